import evaluate
from evaluate.utils import launch_gradio_widget

module = evaluate.load("regen_metric.py", "text")
launch_gradio_widget(module)
