"""A streamer that keeps what a decoding loop hands it, to check custom `generate` loops."""


class RecordingStreamer:
    """transformers' `BaseStreamer` interface: `put` per token tensor, `end` once."""

    def __init__(self):
        self.tokens: list[int] = []
        self.ends = 0

    def put(self, value) -> None:
        assert self.ends == 0, "a token after the end"
        self.tokens += [int(token) for token in value.reshape(-1)]

    def end(self) -> None:
        self.ends += 1
