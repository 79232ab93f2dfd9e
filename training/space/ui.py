"""The Gradio page: a conversation tab and a dataset tab, wired to `SpaceApp`."""

from __future__ import annotations

import gradio as gr

from regen_dataset.schema import NARRATIVE_KINDS
from training.space import render
from training.space.data import SPLITS
from training.space.handlers import DEFAULT_KIND, SpaceApp

INTRO = """# REGEN: talk to a recommender
Pick a shopper from the test split (or compose a history from the catalog), ask a model for the
next item, then critique what it recommends ("I'd prefer a black one"): the critique joins the
history and steers the next recommendation. The REGEN paper's task is one turn; this goes on
for as many as you like."""


def outputs(view) -> tuple:
    """A view's values for the page; a panel it leaves as it is is skipped."""
    return tuple(gr.skip() if value is None else value for value in view.as_tuple())


def critique_outputs(views, text: str):
    """The page's values for each view of a critique turn, the critique box's last.

    The box empties once, when the critique is taken; the narrative streams on after that, and
    a next critique the user types meanwhile must stay. A refused critique stays in the box, for
    the user to fix."""
    taken = False
    for view in views:
        if taken:
            box = gr.skip()
        elif view.failed:
            box = text
        else:
            box, taken = "", True
        yield (*outputs(view), box)


def build_blocks(app: SpaceApp, *, notes: list[str] | None = None) -> gr.Blocks:
    domains = app.data.domains()
    served = [d for d in domains if app.registry.names(d)] or domains
    domain0 = served[0]
    users0 = app.data.user_choices(domain0)
    models0 = app.registry.names(domain0)
    with gr.Blocks(title="REGEN conversational recommender") as blocks:
        gr.Markdown(INTRO)
        if notes:
            gr.HTML(render.note_box(notes), elem_id="regen-notes")
        conversation = gr.State(None)
        with gr.Tab("Conversation"):
            with gr.Row():
                domain = gr.Dropdown(served, value=domain0, label="Domain", elem_id="domain")
                user = gr.Dropdown(
                    users0,
                    value=None,
                    label="Test user (or type a user id)",
                    elem_id="user",
                    filterable=True,
                    allow_custom_value=True,
                )
                model = gr.Dropdown(
                    models0,
                    value=models0[0] if models0 else None,
                    label="Model",
                    elem_id="model",
                )
                kind = gr.Dropdown(
                    list(NARRATIVE_KINDS), value=DEFAULT_KIND, label="Narrative", elem_id="kind"
                )
            with gr.Row():
                empty = gr.Button("Start an empty history", elem_id="empty-history")
                search = gr.Textbox(
                    label="Add a catalog item (id or title words)", elem_id="item-query", scale=3
                )
                add = gr.Button("Add to history", elem_id="add-item")
            message = gr.HTML(elem_id="regen-message")
            history = gr.HTML(label="History", elem_id="regen-history")
            recommend = gr.Button("Recommend", variant="primary", elem_id="recommend")
            with gr.Row():
                with gr.Column(scale=3):
                    ranking = gr.HTML(elem_id="regen-ranking-panel")
                    narrative = gr.Markdown(elem_id="regen-narrative")
                with gr.Column(scale=2):
                    reference = gr.HTML(elem_id="regen-reference-panel")
            with gr.Row():
                critique = gr.Textbox(
                    label="Your critique of the recommendation",
                    placeholder="I'd prefer a black one",
                    elem_id="critique",
                    scale=4,
                )
                send = gr.Button("Send critique", elem_id="send-critique")

        panels = [conversation, history, ranking, narrative, reference, message]

        def switch_domain(chosen):
            """Another domain's users and models; the conversation, of the domain left, ends."""
            names = app.registry.names(chosen)
            return (
                gr.update(choices=app.data.user_choices(chosen), value=None),
                gr.update(choices=names, value=names[0] if names else None),
                None,
                *[""] * (len(panels) - 1),
            )

        domain.change(switch_domain, domain, [user, model, *panels])
        user.input(
            lambda c, d, u, k: outputs(app.load_user(d, u, k, c)),
            [conversation, domain, user, kind],
            panels,
            api_name="load_user",
        )
        empty.click(lambda d, k: outputs(app.empty_history(d, k)), [domain, kind], panels)
        add_inputs = [conversation, domain, search, kind]
        add.click(lambda c, d, q, k: outputs(app.add_item(c, d, q, k)), add_inputs, panels)
        search.submit(lambda c, d, q, k: outputs(app.add_item(c, d, q, k)), add_inputs, panels)

        def run_recommend(state, name, chosen_kind):
            for view in app.recommend(state, name, chosen_kind):
                yield outputs(view)

        def run_critique(state, text, name, chosen_kind):
            yield from critique_outputs(app.critique(state, text, name, chosen_kind), text)

        # A click while the narrative still streams is kept and runs when the stream ends
        # (Gradio's default drops it), on the conversation and the critique as they are then.
        # The three events that run a model share one queue: a critique sent while a
        # recommendation streams waits for it (Gradio gives each event a queue of its own, so
        # they would run at once on one conversation), and the models serve one call at a time.
        one_at_a_time = {
            "trigger_mode": "always_last",
            "concurrency_id": "models",
            "concurrency_limit": 1,
        }
        recommend_inputs = [conversation, model, kind]
        recommend.click(
            run_recommend, recommend_inputs, panels, api_name="recommend", **one_at_a_time
        )
        critique_inputs = [conversation, critique, model, kind]
        send.click(
            run_critique, critique_inputs, [*panels, critique], api_name="critique", **one_at_a_time
        )
        critique.submit(run_critique, critique_inputs, [*panels, critique], **one_at_a_time)

        with gr.Tab("Dataset"):
            _dataset_tab(app, domains)
    return blocks


def _dataset_tab(app: SpaceApp, domains: list[str]) -> None:
    gr.Markdown(
        "Browse every split: each user's purchases with the critiques between them, the next "
        "item, the reference narratives and the auto-rater scores (test rows carry them)."
    )
    with gr.Row():
        domain = gr.Dropdown(domains, value=domains[0], label="Domain", elem_id="data-domain")
        split = gr.Dropdown(list(SPLITS), value="test", label="Split", elem_id="data-split")
        user = gr.Dropdown(
            app.data.user_choices(domains[0]),
            label="User (or type a user id)",
            elem_id="data-user",
            filterable=True,
            allow_custom_value=True,
        )
    history = gr.HTML(elem_id="data-history")
    with gr.Row():
        target = gr.HTML(elem_id="data-target")
        narratives = gr.HTML(elem_id="data-narratives")
        rater = gr.HTML(elem_id="data-rater")
    split.change(
        lambda d, s: gr.update(choices=app.data.user_choices(d, s), value=None),
        [domain, split],
        user,
    )
    domain.change(
        lambda d, s: gr.update(choices=app.data.user_choices(d, s), value=None),
        [domain, split],
        user,
    )
    user.input(app.browse, [domain, split, user], [history, target, narratives, rater])
    with gr.Accordion("Plots", open=True):
        with gr.Row():
            gr.Image(app.data.stats_plot(), label="The dataset", elem_id="data-stats-plot")
        for name in domains:
            plot = app.data.rater_plot(name)
            if plot is not None:
                gr.Image(plot, label=f"Auto-rater scores ({name})", elem_id=f"rater-{name}")
