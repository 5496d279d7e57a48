"""The graphical-modeller models shipped in resources/models are valid the way the modeller checks them."""

from __future__ import annotations

import pytest
from conftest import ROOT

MODELS = sorted((ROOT / "resources" / "models").glob("*.model3"))


@pytest.fixture(params=MODELS, ids=lambda p: p.name)
def model(request, provider):
    from qgis.core import QgsProcessingModelAlgorithm

    m = QgsProcessingModelAlgorithm()
    assert m.fromFile(str(request.param)), request.param
    return m


def test_both_models_ship():
    assert {p.name for p in MODELS} >= {"map_thaw_slumps.model3", "train_detect_evaluate.model3"}


def test_every_child_is_valid_as_in_the_modeller(model):
    """validateChildAlgorithm is what paints a step red; validate() is what the run dialog checks."""
    assert model.childAlgorithms()
    for cid in model.childAlgorithms():
        ok, problems = model.validateChildAlgorithm(cid)
        assert ok, (cid, problems)
    assert model.validate() == (True, [])


def test_every_child_parameter_has_a_value_and_every_output_a_description(model):
    from qgis.core import QgsProcessingParameterDefinition

    for cid, child in model.childAlgorithms().items():
        alg = child.algorithm()
        assert alg is not None, f"{cid}: {child.algorithmId()} is not registered"
        sources = child.parameterSources()
        for d in alg.parameterDefinitions():
            if d.isDestination() or d.flags() & QgsProcessingParameterDefinition.FlagOptional:
                continue
            assert sources.get(d.name()), f"{cid}: mandatory {d.name()} has no value"
        assert set(sources) <= {d.name() for d in alg.parameterDefinitions()}, f"{cid}: stale parameter names"
    assert model.outputDefinitions()
    for out in model.outputDefinitions():
        assert out.description().strip(), out.name()
    for p in model.parameterDefinitions():
        assert p.description().strip(), p.name()


def test_enum_inputs_offer_the_algorithms_current_choices(model):
    """A model input standing for an algorithm's enum keeps its options in step (rebuild the models if not)."""
    from qgis.core import QgsProcessingModelChildParameterSource, QgsProcessingParameterEnum

    checked = 0
    for child in model.childAlgorithms().values():
        for name, sources in child.parameterSources().items():
            for s in sources:
                if s.source() != QgsProcessingModelChildParameterSource.ModelParameter:
                    continue
                model_param = model.parameterDefinition(s.parameterName())
                alg_param = child.algorithm().parameterDefinition(name)
                if isinstance(alg_param, QgsProcessingParameterEnum):
                    assert model_param.options() == alg_param.options(), (name, "run scripts/build_modeller_model.py")
                    checked += 1
    assert checked
