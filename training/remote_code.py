"""The modeling code a checkpoint carries to the Hub, so that it loads without this package.

`AutoModel.from_pretrained(REPO, trust_remote_code=True)` reads `config.json`'s `auto_map`
("AutoModel": "modeling_flare.FlareModel"), downloads that file from the repository and imports
it; transformers' dynamic module loader also fetches the sibling files it imports relatively
(`from .configuration_flare import FlareConfig`) and refuses a file that imports a package the
machine lacks. So each model's files are shipped flat, with every import of this package
rewritten to the sibling file that defines it, and checked: a file may import only the standard
library, the packages transformers itself brings, and pyarrow, which reads the item vocabulary
file (`ALLOWED_PACKAGES`; pyarrow is the one a user may have to install).
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path

FIRST_PARTY = ("regen_models", "regen_dataset", "training")
ALLOWED_PACKAGES = frozenset(
    {"torch", "transformers", "safetensors", "huggingface_hub", "numpy", "pyarrow", "tokenizers"}
)


class RemoteCodeError(ValueError):
    """A module that cannot be shipped as self-contained remote code."""


@dataclass(frozen=True)
class RemoteCode:
    """The flat files of one model type and the Auto classes they register."""

    files: dict[str, str]  # file name in the repository (no .py) -> module of this package
    aliases: dict[str, str]  # another module of this package -> the shipped file standing in
    auto_map: dict[str, str]  # Auto class -> "file.Class"


REMOTE_CODE = {
    "flare": RemoteCode(
        files={
            "configuration_flare": "regen_models.flare.configuration_flare",
            "modeling_flare": "regen_models.flare.modeling_flare",
            "vocabulary_io": "regen_models.vocabulary_io",
        },
        # The installed mixin loads the full vocabulary (datasets, the schema); the shipped one
        # reads the same file with pyarrow alone.
        aliases={"regen_models.items": "vocabulary_io"},
        auto_map={
            "AutoConfig": "configuration_flare.FlareConfig",
            "AutoModel": "modeling_flare.FlareModel",
        },
    ),
    "lumen": RemoteCode(
        files={
            "configuration_lumen": "regen_models.lumen.configuration_lumen",
            "modeling_lumen": "regen_models.lumen.modeling_lumen",
            "decoding": "regen_models.decoding",
            "vocabulary_io": "regen_models.vocabulary_io",
        },
        aliases={"regen_models.items": "vocabulary_io"},
        auto_map={
            "AutoConfig": "configuration_lumen.LumenConfig",
            "AutoModel": "modeling_lumen.LumenForCausalLM",
            "AutoModelForCausalLM": "modeling_lumen.LumenForCausalLM",
        },
    ),
    "fusion": RemoteCode(
        files={
            "configuration_fusion": "regen_models.fusion.configuration_fusion",
            "modeling_fusion": "regen_models.fusion.modeling_fusion",
            "decoding": "regen_models.decoding",
            "user_vectors": "regen_models.fusion.user_vectors",
            "vocabulary_io": "regen_models.vocabulary_io",
        },
        aliases={"regen_models.items": "vocabulary_io"},
        auto_map={
            "AutoConfig": "configuration_fusion.FusionConfig",
            "AutoModel": "modeling_fusion.FusionForCausalLM",
            "AutoModelForCausalLM": "modeling_fusion.FusionForCausalLM",
        },
    ),
}


def remote_code_files(model_type: str) -> dict[str, bytes]:
    """`{file name: text}` of the self-contained modeling files of `model_type`."""
    if model_type not in REMOTE_CODE:
        raise RemoteCodeError(
            f"no remote code for model type {model_type!r} (known: {', '.join(REMOTE_CODE)})"
        )
    code = REMOTE_CODE[model_type]
    flat = {module: name for name, module in code.files.items()} | code.aliases
    sources = {name: _source(module) for name, module in code.files.items()}
    trees = {name: ast.parse(text) for name, text in sources.items()}
    out = {}
    for name, module in code.files.items():
        text = _rewrite_imports(sources[name], trees[name], flat, trees, f"{module} ({name}.py)")
        _check_imports(ast.parse(text), f"{name}.py")
        header = f"# Shipped by `regen release` from {module}; imports point to sibling files.\n"
        out[f"{name}.py"] = (header + text).encode()
    return out


def _source(module: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise RemoteCodeError(f"cannot find the source of {module}")
    return Path(spec.origin).read_text(encoding="utf-8")


def _rewrite_imports(
    text: str, tree: ast.Module, flat: dict[str, str], trees: dict[str, ast.Module], where: str
) -> str:
    lines = text.splitlines(keepends=True)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
            alias.name.split(".")[0] in FIRST_PARTY for alias in node.names
        ):
            raise RemoteCodeError(f"{where}, line {node.lineno}: `import` of this package")
        if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
            continue
        if node.module.split(".")[0] not in FIRST_PARTY:
            continue
        target = flat.get(node.module)
        if target is None:
            raise RemoteCodeError(
                f"{where}, line {node.lineno}: imports {node.module}, which is not shipped "
                "with the model (add it to training/remote_code.py or move what is needed)"
            )
        missing = [a.name for a in node.names if a.name not in _top_level_names(trees[target])]
        if missing:
            raise RemoteCodeError(
                f"{where}, line {node.lineno}: {', '.join(missing)} not defined in {target}.py"
            )
        line = node.lineno - 1
        pattern = rf"\bfrom\s+{re.escape(node.module)}\s+import\b"
        lines[line], count = re.subn(pattern, f"from .{target} import", lines[line])
        if count != 1:
            raise RemoteCodeError(f"{where}, line {node.lineno}: cannot rewrite this import")
    return "".join(lines)


def _top_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def _check_imports(tree: ast.Module, where: str) -> None:
    """Only the standard library, the allowed packages and sibling files."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            modules = [node.module]
        else:
            continue
        for module in modules:
            top = module.split(".")[0]
            if top not in sys.stdlib_module_names and top not in ALLOWED_PACKAGES:
                raise RemoteCodeError(
                    f"{where}, line {node.lineno}: imports {module}, which a machine with only "
                    "transformers and its dependencies may lack"
                )
