"""Where the model looks: attribution maps for a run's report and ``medtorch explain``.

The method for each kind of main input is declared in this package (``image``: Grad-CAM,
``signal``: saliency over time; :mod:`medtorch.explain.registry`), with the
weight-randomisation sanity check of Adebayo et al. 2018 (:mod:`medtorch.explain.core`).
The methods use captum (``pip install medtorch[vision]``), imported when a map is drawn.
"""

from medtorch.explain.core import (
    randomisation_test,
    randomised_copy,
    rank_correlation,
    select_examples,
    write_attributions,
)
from medtorch.explain.registry import Explainer, Panel, get_explainer, register_explainer

__all__ = [
    "Explainer",
    "Panel",
    "get_explainer",
    "randomisation_test",
    "randomised_copy",
    "rank_correlation",
    "register_explainer",
    "select_examples",
    "write_attributions",
]
