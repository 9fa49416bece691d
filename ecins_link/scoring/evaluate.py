"""Placeholder, replaced below."""


def evaluate_scenarios(store, truth_dir):  # noqa: ANN001, ANN201
    raise NotImplementedError
