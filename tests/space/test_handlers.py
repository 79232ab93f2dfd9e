"""The Space's logic without a browser: the model registry, the conversation over several turns,
streaming, and the messages bad input gets."""

import html
import json
import shutil

import pytest

from regen_models.hybrid import HybridSystem
from training import cli
from training.space import build_space, demo_space
from training.space.conversation import MAX_CRITIQUE_CHARACTERS, Conversation
from training.space.handlers import TOP_K, SpaceApp
from training.space.registry import MODELS, ModelSpec, Ranking, Registry, discover

HYBRID = "Hybrid (FLARE + narrator)"


class ByCritique:
    """A stand-in model: ranks the catalog by a hash of the critique, writes two pieces."""

    kinds = ["purchase_reason"]

    def __init__(self, vocabulary, fail: bool = False):
        self.vocabulary = vocabulary
        self.category = vocabulary.category
        self.fail = fail
        self.rows = []

    def rank(self, row, top_k):
        import zlib

        if self.fail:
            raise RuntimeError("the model broke")
        self.rows.append(row)
        ids = sorted(
            self.vocabulary.item_ids, key=lambda i: zlib.crc32(f"{i}{row['critique']}".encode())
        )
        ids = ids[:top_k]
        return Ranking(ids, [1.0 / (n + 1) for n in range(len(ids))])

    def narrate(self, row, item_id, kind):
        yield "first"
        yield f"first {item_id}"


def fake_space(tiny_demo, **kwargs):
    """A Space whose one model is `ByCritique`, registered the way a new model would be."""
    from regen_models.items import ItemVocabulary

    vocabulary = ItemVocabulary.from_dataset(str(tiny_demo / "regen"), "office")
    model = ByCritique(vocabulary, **kwargs)
    model.loaded_on = []

    def load(paths, device):
        model.loaded_on.append(device)
        return model

    spec = ModelSpec("Fake", "ranks by the critique's hash", ("flare",), load)
    _, app = build_space(tiny_demo / "regen", discover(tiny_demo), plots_dir=tiny_demo / "plots")
    app.registry = Registry.build(discover(tiny_demo), (*MODELS, spec), ("office",), "cpu")
    return app, model


def error_of(view) -> str:
    assert view.failed, view.message
    assert "Traceback" not in view.message
    return html.unescape(view.message)


def test_discovery_keeps_the_models_whose_checkpoints_are_there(tiny_demo):
    found = discover(tiny_demo)
    assert set(found) == {"office"} and set(found["office"]) == {"flare", "narrator"}
    registry = Registry.build(found)
    assert registry.names("office") == [HYBRID, "FLARE"]
    assert registry.names("clothing") == []
    assert "LUMEN (office): left out, no lumen checkpoint" in registry.notes
    with pytest.raises(KeyError, match="no model 'LUMEN' for office"):
        registry.entry("office", "LUMEN")


def test_a_new_model_is_one_registry_entry(tiny_demo):
    app, model = fake_space(tiny_demo)
    assert "Fake" in app.registry.names("office")
    user = app.data.user_choices("office")[0][1]
    views = list(app.recommend(app.load_user("office", user).conversation, "Fake", None))
    assert not views[-1].failed
    assert views[-1].narrative.endswith(f"first {views[-1].conversation.last_turn.top_item}")
    assert model.loaded_on == ["cpu"]  # the registry's device, once
    assert app.registry.device == "cpu"


def test_several_critique_turns_steer_and_grow_the_history(tiny_demo):
    app, model = fake_space(tiny_demo)
    user = app.data.user_choices("office")[3][1]
    row = app.data.row("office", user)
    conversation = app.load_user("office", user).conversation
    list(app.recommend(conversation, "Fake", "purchase_reason"))
    first = conversation.last_turn
    assert len(first.item_ids) == TOP_K and conversation.target == row["target"]
    for turn, text in enumerate(["I'd prefer a black one", "cheaper, please"], start=1):
        before = conversation.last_turn
        views = list(app.critique(conversation, text, "Fake", "purchase_reason"))
        assert not views[-1].failed
        assert len(conversation.history) == len(row["history"]) + turn
        added = conversation.history[-1]
        assert added["item_id"] == before.top_item and added["rating"] is None
        # the critique that led to the critiqued item moves onto it; the new one steers
        assert added["critique"] == (row["critique"] if turn == 1 else "I'd prefer a black one")
        assert conversation.critique == text and model.rows[-1]["critique"] == text
        assert conversation.last_turn.item_ids != before.item_ids
        assert not set(conversation.rejected) & set(conversation.last_turn.item_ids)
        assert conversation.target is None and "no true next item" in views[-1].reference
        assert html.escape(text) in views[-1].history
    assert len(conversation.turns) == 3
    # a model reads the history and the critique, never the labels
    assert set(model.rows[0]) == {"user_id", "history", "critique"}


def test_the_critique_box_empties_once_and_keeps_what_is_typed_while_the_narrative_streams(
    tiny_demo,
):
    import gradio as gr

    from training.space.ui import critique_outputs

    app, _ = fake_space(tiny_demo)
    conversation = app.load_user("office", app.data.user_choices("office")[0][1]).conversation
    list(app.recommend(conversation, "Fake", "purchase_reason"))
    text = "I'd prefer a black one"
    pages = list(critique_outputs(app.critique(conversation, text, "Fake", None), text))
    assert len(pages) > 2  # the ranking, then the narrative's pieces
    boxes = [page[-1] for page in pages]
    assert boxes[0] == "" and all(box == gr.skip() for box in boxes[1:])
    # a refused critique stays in the box, for the user to fix
    refused = list(critique_outputs(app.critique(conversation, "   ", "Fake", None), "   "))
    assert [page[-1] for page in refused] == ["   "]


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("empty_history", "The history is empty"),
        ("long_critique", "The critique is 5,000 characters long"),
        ("blank_critique", "The critique is empty"),
        ("invisible_critique", "The critique is empty"),
        ("critique_first", "Ask for a recommendation first"),
        ("unknown_item", "No item of the office catalog matches 'no-such-item'"),
        ("unknown_user", "There is no user 'nobody' in the office test split"),
        ("no_model", "Pick a model first"),
        ("no_user", "Pick a user"),
    ],
)
def test_bad_input_gets_a_readable_message(tiny_demo, action, expected):
    app, _ = fake_space(tiny_demo)
    user = app.data.user_choices("office")[0][1]
    loaded = app.load_user("office", user).conversation
    if action == "empty_history":
        view = list(app.recommend(app.empty_history("office").conversation, "Fake", None))[-1]
    elif action in ("long_critique", "blank_critique", "invisible_critique"):
        list(app.recommend(loaded, "Fake", None))
        text = {"long_critique": "x" * 5000, "blank_critique": "   "}.get(
            action,
            "\u200b\u200d \u2060",  # zero-width space and joiners only
        )
        turns, purchases = len(loaded.turns), len(loaded.history)
        view = list(app.critique(loaded, text, "Fake", None))[-1]
        assert len(loaded.turns) == turns and len(loaded.history) == purchases
        assert view.ranking is None and view.history is None  # the page keeps its panels
    elif action == "critique_first":
        view = list(app.critique(loaded, "blue", "Fake", None))[-1]
    elif action == "unknown_item":
        view = app.add_item(None, "office", "no-such-item")
    elif action == "unknown_user":
        view = app.load_user("office", "nobody")
    elif action == "no_model":
        view = list(app.recommend(loaded, None, None))[-1]
    else:
        view = list(app.recommend(None, "Fake", None))[-1]
    assert expected in error_of(view)
    assert MAX_CRITIQUE_CHARACTERS == 500


def test_a_failing_model_and_a_missing_checkpoint_are_messages(tiny_demo, tmp_path):
    app, _ = fake_space(tiny_demo, fail=True)
    conversation = app.load_user("office", app.data.user_choices("office")[0][1]).conversation
    assert "Fake failed: RuntimeError: the model broke" in error_of(
        list(app.recommend(conversation, "Fake", None))[-1]
    )
    demo = tmp_path / "demo"
    shutil.copytree(tiny_demo / "checkpoints", demo / "checkpoints")
    _, app = build_space(tiny_demo / "regen", discover(demo), plots_dir=tmp_path / "plots")
    shutil.rmtree(demo / "checkpoints" / "flare-office")  # gone after the Space started
    message = error_of(list(app.recommend(conversation, "FLARE", None))[-1])
    assert "the flare checkpoint of FLARE is missing: flare-office holds no" in message
    assert str(tmp_path) not in message  # the server's folders stay in its log


def test_a_failure_message_shows_no_server_folder(tiny_demo, monkeypatch):
    app, model = fake_space(tiny_demo)
    conversation = app.load_user("office", app.data.user_choices("office")[0][1]).conversation

    def broken(row, top_k):
        raise OSError("cannot read /srv/cache/models--x/snapshots/abc/model.safetensors")

    monkeypatch.setattr(model, "rank", broken)
    message = error_of(list(app.recommend(conversation, "Fake", None))[-1])
    assert message.endswith("Fake failed: OSError: cannot read model.safetensors</div>")


def test_composed_history_from_the_catalog(tiny_demo):
    app, _ = fake_space(tiny_demo)
    item = app.data.catalog("office").item_ids[5]
    title = app.data.item("office", item)["title"]
    view = app.add_item(None, "office", item)
    view = app.add_item(view.conversation, "office", " ".join(title.split()[:2]))
    assert not view.failed and len(view.conversation.history) == 2
    assert view.conversation.history[0]["item_id"] == item
    assert "composed from the catalog has no true next item" in view.reference
    assert not list(app.recommend(view.conversation, "Fake", None))[-1].failed


def test_hybrid_streams_the_narrative_it_would_write_in_a_batch(tiny_demo, tiny_space):
    _, app = tiny_space
    user = app.data.user_choices("office")[2][1]
    conversation = app.load_user("office", user).conversation
    views = list(app.recommend(conversation, HYBRID, "purchase_reason"))
    assert not any(view.failed for view in views), views[-1].message
    turn = conversation.last_turn
    assert views[0].ranking.count("<tr class=") == TOP_K and views[0].narrative == ""
    texts = streamed_texts(views)
    assert len(set(texts)) >= 2, "the narrative arrives in pieces"
    hybrid = HybridSystem.from_pretrained(
        tiny_demo / "checkpoints" / "flare-office", tiny_demo / "checkpoints" / "narrator-office"
    )
    batch = hybrid([conversation.row()], kinds=["purchase_reason"], top_k=TOP_K)[0]
    assert batch.item_ids == turn.item_ids
    assert texts[-1] == batch.narratives["purchase_reason"] == turn.narratives["purchase_reason"]
    # a kind the narrator was not trained for falls back to one it was, and says so
    views = list(app.critique(conversation, "something smaller", HYBRID, "user_summary_long"))
    assert "writes purchase_reason, user_profile: showing purchase_reason" in views[-1].message


def turn_text(view) -> str:
    return view.narrative.split("*:\n\n", 1)[1] if "*:\n\n" in view.narrative else ""


def streamed_texts(views) -> list[str]:
    """The narrative of each view after the ranking's, checked to only ever grow."""
    texts = [turn_text(view) for view in views[1:]]
    assert all(later.startswith(earlier) for earlier, later in zip(texts, texts[1:], strict=False))
    return texts


def test_dataset_tab_browses_rows_and_plots(tiny_space):
    _, app = tiny_space
    user = app.data.user_choices("office", "train")[0][1]
    history, target, narratives, rater = app.browse("office", "train", user)
    assert "regen-card" in history and "purchase_reason" in narratives
    test_user = app.data.user_choices("office")[0][1]
    assert "<td>" in app.browse("office", "test", test_user)[3]  # test rows carry rater scores
    assert "There is no user" in app.browse("office", "test", "nobody")[0]
    assert app.data.stats_plot().stat().st_size > 0
    assert app.data.rater_plot("office").stat().st_size > 0


def test_a_rebuilt_folder_gets_plots_of_its_own(tiny_demo, tmp_path):
    """The plots are cached on disk; a folder built again must not show the old data's."""
    from training.space.data import SpaceData

    folder = tmp_path / "regen"
    shutil.copytree(tiny_demo / "regen", folder)
    first = SpaceData(folder, tmp_path / "plots").stats_plot()
    assert SpaceData(folder, tmp_path / "plots").stats_plot() == first  # reused
    report = json.loads((folder / "build_report.json").read_text())
    report["seed"] = (report.get("seed") or 0) + 1  # as another build would differ
    (folder / "build_report.json").write_text(json.dumps(report))
    rebuilt = SpaceData(folder, tmp_path / "plots")
    assert rebuilt.stats_plot() != first and rebuilt.stats_plot().is_file()
    assert rebuilt.rater_plot("office").parent == rebuilt.stats_plot().parent


def test_regen_space_names_a_missing_demo_folder(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["space", "--demo-dir", str(tmp_path / "nothing")])
    assert "run `make demo`" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="not a built REGEN folder"):
        demo_space(tmp_path)


def test_conversation_keeps_the_row_it_was_built_from_unchanged(tiny_space):
    _, app = tiny_space
    row = app.data.row("office", app.data.user_choices("office")[0][1])
    conversation = Conversation.from_row("office", row)
    conversation.history.append({"item_id": "x"})
    assert len(app.data.row("office", row["user_id"])["history"]) == len(row["history"])
    assert isinstance(app, SpaceApp)


def test_lumen_ranks_and_writes_in_the_space(tiny_lumen, tmp_path):
    found = discover(tiny_lumen)
    assert found["office"]["lumen"] == tiny_lumen / "lumen-office"
    # `regen space` shows the user-disjoint build's users, whom no model trained on
    assert demo_space(tiny_lumen)[1].data.folder == tiny_lumen / "regen-users"
    _, app = build_space(tiny_lumen / "regen", found, plots_dir=tmp_path)
    assert "LUMEN" in app.registry.names("office")
    conversation = app.load_user("office", app.data.user_choices("office")[0][1]).conversation
    views = list(app.recommend(conversation, "LUMEN", "purchase_reason"))
    assert not views[-1].failed, views[-1].message
    assert views[-1].ranking.count("<tr class=") == TOP_K
    lumen = app.registry.model("office", "LUMEN").lumen
    expected = lumen.write(
        [conversation.row()], "purchase_reason", item_ids=[conversation.last_turn.top_item]
    )[0].text
    assert streamed_texts(views)[-1] == conversation.last_turn.narratives["purchase_reason"]
    assert conversation.last_turn.narratives["purchase_reason"] == expected
    views = list(app.critique(conversation, "in black, please", "LUMEN", "purchase_reason"))
    assert not views[-1].failed and conversation.last_turn.critique == "in black, please"


def test_the_user_list_is_capped_and_any_user_can_be_typed(tiny_space, monkeypatch):
    from training.space import data

    _, app = tiny_space
    monkeypatch.setattr(data, "MAX_USER_CHOICES", 5)
    choices = app.data.user_choices("office")
    assert len(choices) == 5 and choices[0][0].endswith("purchases)")
    beyond = app.data.split("office")["user_id"][40]
    assert app.load_user("office", beyond).conversation.user_id == beyond


def test_the_fusion_narrator_writes_about_flares_top_item_in_the_space(tiny_fusion, tmp_path):
    found = discover(tiny_fusion)
    assert set(found["office"]) == {"flare", "fusion"}
    _, app = build_space(tiny_fusion / "regen", found, plots_dir=tmp_path)
    name = "Fusion (FLARE + fusion narrator)"
    assert app.registry.names("office") == [name, "FLARE"]
    conversation = app.load_user("office", app.data.user_choices("office")[0][1]).conversation
    views = list(app.recommend(conversation, name, "purchase_reason"))
    assert not views[-1].failed, views[-1].message
    assert views[-1].ranking.count("<tr class=") == TOP_K
    fusion = app.registry.model("office", name).fusion
    top_item = conversation.last_turn.top_item
    expected = fusion.write(
        [{**conversation.row(), "target": {"item_id": top_item}}], "purchase_reason"
    )[0]
    assert streamed_texts(views)[-1] == conversation.last_turn.narratives["purchase_reason"]
    assert conversation.last_turn.narratives["purchase_reason"] == expected
    views = list(app.critique(conversation, "something cheaper", name, "purchase_reason"))
    assert not views[-1].failed and conversation.last_turn.critique == "something cheaper"


def test_a_critique_whose_recommendation_fails_is_taken_back(tiny_demo):
    app, model = fake_space(tiny_demo)
    conversation = app.load_user("office", app.data.user_choices("office")[0][1]).conversation
    list(app.recommend(conversation, "Fake", None))
    history, rejected = list(conversation.history), list(conversation.rejected)
    model.fail = True
    view = list(app.critique(conversation, "a black one", "Fake", None))[-1]
    assert "the model broke" in error_of(view)
    assert conversation.history == history and conversation.rejected == rejected
    assert view.conversation is conversation and view.history.count("data-item=") == len(history)
    model.fail = False
    assert not list(app.critique(conversation, "a black one", "Fake", None))[-1].failed
    assert len(conversation.history) == len(history) + 1  # the critiqued item, once
    assert conversation.critique == "a black one"


def test_an_item_added_to_a_dataset_user_drops_their_critique_and_next_item(tiny_demo):
    app, model = fake_space(tiny_demo)
    users = [user for _, user in app.data.user_choices("office")]
    loaded = next(c for c in (app.load_user("office", u).conversation for u in users) if c.critique)
    assert loaded.target and loaded.reference
    view = app.add_item(loaded, "office", app.data.catalog("office").item_ids[5])
    assert not view.failed
    assert (loaded.critique, loaded.target, loaded.reference) == (None, None, {})
    list(app.recommend(loaded, "Fake", None))
    assert model.rows[-1]["critique"] is None


def test_a_catalog_critiqued_away_is_a_message(tiny_demo):
    app, _ = fake_space(tiny_demo)
    conversation = app.load_user("office", app.data.user_choices("office")[0][1]).conversation
    conversation.rejected = list(app.data.catalog("office").item_ids)
    conversation.turns.append(conversation.record(["x"], [1.0]))
    turns = len(conversation.turns)
    message = error_of(list(app.recommend(conversation, "Fake", None))[-1])
    assert "Every item of the catalog has been critiqued away" in message
    assert len(conversation.turns) == turns


def test_a_refused_action_leaves_the_recommendation_on_the_page(tiny_demo):
    # The panels a refusal leaves as None are skipped by the page (not blanked): the ranking
    # and narrative that the next critique is about stay in view.
    app, model = fake_space(tiny_demo)
    user = app.data.user_choices("office")[0][1]
    conversation = app.load_user("office", user).conversation
    list(app.recommend(conversation, "Fake", None))
    refused = [
        app.load_user("office", "nobdy", None, conversation),  # a mistyped user id
        app.add_item(conversation, "office", app.data.catalog("office").item_ids[5]),
    ]
    model.fail = True
    refused.append(list(app.critique(conversation, "a black one", "Fake", None))[-1])
    refused.append(list(app.recommend(conversation, "Fake", None))[-1])
    model.fail = False
    for view in refused:
        assert view.failed and view.conversation is conversation
        assert (view.ranking, view.narrative) == (None, None)
    assert (refused[0].history, refused[0].reference, refused[1].history) == (None, None, None)
    assert refused[2].history.count("data-item=") == len(conversation.history)  # restored
    assert len(conversation.turns) == 1


def test_a_title_is_shown_as_typed_in_the_narrative_heading(tiny_demo, monkeypatch):
    app, _ = fake_space(tiny_demo)
    conversation = app.load_user("office", app.data.user_choices("office")[0][1]).conversation
    item = app.data.item
    title = "[Free gift](https://evil.example) <img src=x> pens_*bold*"
    monkeypatch.setattr(app.data, "item", lambda d, i: dict(item(d, i), title=title))
    narrative = list(app.recommend(conversation, "Fake", None))[-1].narrative
    assert "](" not in narrative and "<img" not in narrative and "_*" not in narrative
    assert "\\[Free gift\\]\\(https://evil\\.example\\) &lt;img src=x&gt;" in narrative


def test_a_key_error_inside_a_model_is_its_failure_not_an_unknown_model(tiny_demo):
    app, model = fake_space(tiny_demo)
    conversation = app.load_user("office", app.data.user_choices("office")[0][1]).conversation

    def broken_rank(row, top_k):
        raise KeyError("/home/someone/.cache/secret/config.json")

    model.rank = broken_rank
    message = error_of(list(app.recommend(conversation, "Fake", None))[-1])
    assert "Fake failed: KeyError: 'config.json'" in message and "/home" not in message
    unknown = error_of(list(app.recommend(conversation, "Nope", None))[-1])
    assert ">no model 'Nope' for office (this Space offers: " in unknown


def test_the_reference_beside_a_narrative_is_of_the_kind_shown(tiny_demo):
    app, _ = fake_space(tiny_demo)  # the fake writes purchase_reason only
    users = [user for _, user in app.data.user_choices("office")]
    conversation = next(
        c
        for c in (app.load_user("office", u).conversation for u in users)
        if {"purchase_reason", "user_profile"} <= set(c.reference)
    )
    view = list(app.recommend(conversation, "Fake", "user_profile"))[-1]
    assert "showing purchase_reason" in view.message
    assert "Reference purchase_reason" in view.reference
    assert html.escape(conversation.reference["purchase_reason"]) in view.reference


def test_another_domain_ends_the_conversation_and_lists_its_users_and_models(tiny_space):
    blocks, app = tiny_space
    domain = next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "domain")
    switch = next(
        f for f in blocks.fns.values() if (domain._id, "change") in [tuple(t) for t in f.targets]
    )
    user, model, state, *panels = switch.fn("clothing")
    assert user["choices"] == app.data.user_choices("clothing") and user["value"] is None
    assert model["choices"] == app.registry.names("clothing") and model["value"] is None
    assert state is None and panels == [""] * 5
    user, model, *_ = switch.fn("office")
    assert model["value"] == app.registry.names("office")[0]


def test_messages_lose_the_servers_folders_spaces_and_all():
    from training.space.handlers import without_folders

    quoted = "No such file: '/Users/Jane Doe/regen/demo_out/checkpoints/flare/config.json'"
    assert without_folders(quoted) == "No such file: 'config.json'"
    assert without_folders('KeyError: "/home/x y/z.txt"') == 'KeyError: "z.txt"'
    assert without_folders("read /srv/app/data/x.json here") == "read x.json here"
    assert without_folders("a/b relative, 1/2 a ratio") == "a/b relative, 1/2 a ratio"
