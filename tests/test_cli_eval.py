"""``metarec eval recommender|finetune|matchers`` on a tiny portfolio fitted on real (random-ResNet18) fingerprints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from metafeatures.datasets import open_dataset
from metafeatures.errors import ArtifactError
from metafeatures.fingerprint import Fingerprinter
from metafeatures.summary import content_hash, summarize
from metarec.cli import main
from metarec.commands.portfolio import PORTFOLIO_DIR_ENV
from portfolio import eval_finetune, evaluation
from portfolio.artifact import load_portfolio
from portfolio.evaluation import BASELINES
from tests.fixtures.cli import fails, run_json
from tests.fixtures.factories import make_image_folder
from tests.fixtures.portfolios import INCUMBENTS, fit_matchers, save_test_portfolio

N_SAMPLES = 24
KNOWN = {
    "tinted": {"classes": {"a": 12, "b": 12}, "size": (16, 20)},
    "grey": {"classes": {"x": 8, "y": 8, "z": 8}, "size": (28, 28), "grey": True, "seed": 1},
    "large": {"classes": {"p": 12, "q": 12}, "size": (40, 36), "seed": 2},
}
HELD_OUT = {"heldout": {"classes": {"a": 10, "b": 10}, "size": (16, 20), "seed": 5}}
NAMES = tuple(KNOWN)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A collection of four tiny datasets and a portfolio of three of them (module-scoped: no cache use)."""
    root = tmp_path_factory.mktemp("cli-eval")
    paths = {name: make_image_folder(root / "data" / name, **kw) for name, kw in {**KNOWN, **HELD_OUT}.items()}
    fingerprinter = Fingerprinter("resnet18", "random", resolution=32)
    summaries, features = [], {}
    for name in KNOWN:
        ds = open_dataset(paths[name])
        summaries.append(summarize(ds))
        features[name] = fingerprinter.fingerprint(ds, content_hash(ds), n_samples=N_SAMPLES, seed=0,
                                                   use_cache=False).features
    matchers = fit_matchers(features, mlp={"hidden": 32, "max_epochs": 30})
    return {"root": root, "data": root / "data", "spec": fingerprinter.spec, "summaries": summaries,
            "portfolio": save_test_portfolio(root / "pf", summaries, fingerprinter.spec, matchers)}


def test_cli_defaults_are_the_library_defaults_and_the_parser_does_not_load_torch():
    from metarec.commands import eval as eval_cmd
    from metarec.commands import portfolio as portfolio_cmd
    from portfolio.policies import POLICIES

    assert eval_cmd.DEFAULT_POLICIES == evaluation.DEFAULT_POLICIES
    assert portfolio_cmd.POLICY_CHOICES == POLICIES
    assert eval_cmd.DEFAULT_BATCH_SIZES == evaluation.DEFAULT_BATCH_SIZES
    assert eval_cmd.MAX_REPEATS == eval_finetune.MAX_REPEATS
    code = "import sys; from metarec.cli import get_args_parser; get_args_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False"


def recommender_argv(world: dict, out: Path, *extra: str) -> list[str]:
    return ["eval", "recommender", "--portfolio", str(world["portfolio"]), "--n-samples", str(N_SAMPLES),
            "--matchers", "kmeans,mlp", "--batch-sizes", "4,8", "--n-batches", "3", "--out-dir", str(out),
            "--json", "--quiet", *extra]


def test_eval_recommender_json_contract_from_a_collection_then_from_the_cache(world: dict, tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture[str]):
    first = run_json(capsys, recommender_argv(world, tmp_path / "a", "--collection", str(world["data"])))
    methods = first["methods"]
    policies = ("incumbent", "neighbors", "reduced")
    assert set(methods) == {*BASELINES, *(f"{p}/metafeatures" for p in policies),
                            *(f"{p}/{m}@{b}" for p in policies for m in ("kmeans", "mlp") for b in (4, 8))}
    assert first["grouped"] is False and first["settings"]["policies"] == list(evaluation.DEFAULT_POLICIES)
    for method in methods.values():
        assert {"mean_regret", "beats_single_best", "per_dataset"} <= set(method)
        assert set(method["per_dataset"]) == set(NAMES)
        assert 0.0 <= method["beats_single_best"] <= 1.0
    assert methods["oracle"]["mean_regret"] == 0.0
    # fixture matrix rows/cols tinted, grey, large = [[.9,.5,.2],[.6,.8,.3],[.5,.7,.9]]: without tinted the
    # best mean over grey and large is large's incumbent (.5 on tinted, the worst of .6/.5); without grey it is
    # large's again (.7 on grey, the best of .5/.7)
    assert methods["single_best"]["per_dataset"]["tinted"] == 1.0
    assert methods["single_best"]["per_dataset"]["grey"] == 0.0
    assert methods["random"]["per_dataset"]["tinted"] == 0.5
    assert (tmp_path / "a" / "regret.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "a" / "eval_recommender.json").read_text())["methods"] == methods
    # the fingerprints are cached now (keyed by the portfolio's content hashes): no collection needed any more
    second = run_json(capsys, recommender_argv(world, tmp_path / "b"))
    assert second["methods"] == methods
    # policies and time budgets are chosen on the command line; an unknown policy fails before any work
    third = run_json(capsys, recommender_argv(world, tmp_path / "c", "--policies", "incumbent,single_best"))
    assert set(third["methods"]) == {*BASELINES, "incumbent/metafeatures",
                                     *(f"incumbent/{m}@{b}" for m in ("kmeans", "mlp") for b in (4, 8))}
    assert "policy" in fails(capsys, recommender_argv(world, tmp_path / "d", "--policies", "nearest"))
    # by default: the portfolio's own recommending matcher (else all it ships), one dataset held out at a time
    # when there are no groups
    argv = recommender_argv(world, tmp_path / "f")
    del argv[argv.index("--matchers"):argv.index("--matchers") + 2]
    fourth = run_json(capsys, argv)
    loaded = load_portfolio(world["portfolio"])
    main = loaded.selection.evaluation.get("default_matcher")
    assert fourth["settings"]["matchers"] == ([main] if main in loaded.matchers else sorted(loaded.matchers))
    assert fourth["grouped"] is False
    err = fails(capsys, recommender_argv(world, tmp_path / "e", "--time-budgets", "60"))
    assert "no learning curves" in err  # the fixture portfolio stores scores only


def test_eval_recommender_without_cache_or_collection_says_what_to_pass(world: dict, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]):
    err = fails(capsys, recommender_argv(world, tmp_path))
    assert "not demo datasets" in err and "--collection" in err


def test_eval_recommender_refuses_a_collection_with_other_content(world: dict, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]):
    make_image_folder(tmp_path / "other" / "tinted", **{**KNOWN["tinted"], "seed": 9})  # same name, other images
    err = fails(capsys, recommender_argv(world, tmp_path / "out", "--collection", str(tmp_path / "other")))
    assert "content hashes" in err and "tinted" in err


def test_eval_recommender_refuses_a_portfolio_of_two_datasets(world: dict, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]):
    rng = np.random.default_rng(0)
    features = {s.name: rng.standard_normal((10, world["spec"].feature_dim)) for s in world["summaries"][:2]}
    two = save_test_portfolio(tmp_path / "pf2", world["summaries"][:2], world["spec"], fit_matchers(features),
                              scores=np.array([[0.9, 0.5], [0.6, 0.8]]), configs=INCUMBENTS[:2])
    err = fails(capsys, ["eval", "recommender", "--portfolio", str(two), "--out-dir", str(tmp_path / "out")])
    assert "at least 3 known datasets" in err


def test_eval_recommender_unknown_matcher(world: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    err = fails(capsys, [*recommender_argv(world, tmp_path), "--matchers", "bogus"])
    assert "unknown matcher 'bogus'" in err


def test_eval_recommender_baselines_on_the_shipped_portfolio(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(PORTFOLIO_DIR_ENV, raising=False)
    payload = run_json(capsys, ["eval", "recommender", "--matchers", "", "--out-dir", str(tmp_path), "--json"])
    meta = {f"{p}/metafeatures" for p in ("incumbent", "neighbors", "reduced")}
    assert set(payload["methods"]) == {*BASELINES, *meta}
    assert len(payload["datasets"]) >= 3 and payload["portfolio_version"].startswith("demo-")
    # the shipped portfolio's datasets are derivatives of sources: they are held out a group at a time by default
    assert payload["grouped"] is True and len(set(payload["groups"].values())) < len(payload["datasets"])
    lodo = run_json(capsys, ["eval", "recommender", "--matchers", "", "--no-grouped", "--out-dir", str(tmp_path),
                             "--json"])
    assert lodo["grouped"] is False
    assert lodo["methods"]["single_best"]["mean_regret"] != payload["methods"]["single_best"]["mean_regret"]
    assert payload["methods"]["oracle"]["mean_regret"] == 0.0
    assert payload["methods"]["random"]["mean_regret"] > 0.0


def test_eval_finetune_compares_recommendation_and_baseline(world: dict, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]):
    payload = run_json(capsys, ["eval", "finetune", "--portfolio", str(world["portfolio"]), "--collection",
                                str(world["data"]), "--budget-s", "2", "--n-samples", "20", "--out-dir",
                                str(tmp_path), "--json", "--quiet"])
    assert list(payload["datasets"]) == ["heldout"]  # the three known datasets are not held out
    row = payload["datasets"]["heldout"]
    assert row["recommendation"]["best_match"] in NAMES
    incumbent = INCUMBENTS[NAMES.index(row["recommendation"]["incumbent_of"])]
    assert row["recommended"]["config"] == incumbent.model_copy(update={"seed": 0}).to_dict()
    assert row["baseline"]["config"]["backbone"] == "mobilenet_v2"
    assert row["baseline"]["config"]["pretrained"] == "imagenet"
    for arm in ("recommended", "baseline"):
        assert -1.0 <= row[arm]["alc"] <= 1.0 and -1.0 <= row[arm]["final_nauc"] <= 1.0
        assert 0.0 < row[arm]["return_time"] <= row[arm]["wall_time"]
    assert payload["settings"]["budget_s"] == 2.0 and payload["settings"]["evidence"] == "fingerprints"
    assert (tmp_path / "eval_finetune.json").is_file()


def test_eval_finetune_can_rank_neighbours_by_meta_features(world: dict, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]):
    payload = run_json(capsys, ["eval", "finetune", "--portfolio", str(world["portfolio"]), "--collection",
                                str(world["data"]), "--budget-s", "1", "--n-samples", "20", "--evidence",
                                "metafeatures", "--repeats", "2", "--out-dir", str(tmp_path), "--json", "--quiet"])
    assert payload["settings"]["evidence"] == "metafeatures"
    neighbors = payload["datasets"]["heldout"]["recommendation"]["neighbors"]
    assert neighbors[0]["dataset"] == "tinted"  # same classes, colour and image size, nearly as many images
    assert [n["distance"] for n in neighbors] == sorted(n["distance"] for n in neighbors)
    # two training seeds per arm: the arm reports their mean, its spread and both runs
    row = payload["datasets"]["heldout"]
    for arm in ("recommended", "baseline"):
        runs = row[arm]["runs"]
        assert [r["config"]["seed"] for r in runs] == [0, 1]
        assert row[arm]["alc"] == pytest.approx(sum(r["alc"] for r in runs) / 2, abs=1e-4)
        assert row[arm]["alc_sd"] >= 0.0
    diff = row["recommended"]["alc"] - row["baseline"]["alc"]
    same = {**row["recommended"]["config"], "seed": 0} == {**row["baseline"]["config"], "seed": 0}
    assert payload["wins"] == {"recommended_higher": int(diff > 0), "baseline_higher": int(diff < 0),
                               "equal": int(diff == 0), "datasets": 1, "differs": int(not same),
                               "differs_higher": int(diff > 0 and not same)}
    assert payload["settings"]["repeats"] == 2


@pytest.mark.parametrize("repeats, message", [("0", "must be in 1..10"), ("11", "must be in 1..10"),
                                             ("two", "expected an integer")])
def test_eval_finetune_refuses_a_bad_repeat_count(tmp_path: Path, capsys: pytest.CaptureFixture[str], repeats: str,
                                                  message: str):
    with pytest.raises(SystemExit) as err:  # refused by the parser, before any portfolio is opened
        main(["eval", "finetune", "--collection", str(tmp_path), "--budget-s", "1", "--repeats", repeats])
    assert err.value.code == 2 and f"--repeats: {message}" in capsys.readouterr().err


def test_eval_finetune_refuses_a_known_dataset(world: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    err = fails(capsys, ["eval", "finetune", "--portfolio", str(world["portfolio"]), "--collection",
                         str(world["data"]), "--budget-s", "2", "--datasets", "tinted", "--out-dir", str(tmp_path)])
    assert "known to the portfolio" in err


def test_eval_matchers_is_matchers_eval(world: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    payload = run_json(capsys, ["eval", "matchers", "--collection", str(world["data"]), "--backbone", "resnet18",
                                "--weights", "random", "--resolution", "32", "--n-samples", "20", "--batch-sizes",
                                "1,4", "--matchers", "kmeans", "--n-batches", "3", "--out-dir", str(tmp_path),
                                "--json", "--quiet"])
    assert set(payload["matchers"]) == {"kmeans"} and set(payload["matchers"]["kmeans"]) == {"1", "4"}
    assert (tmp_path / "matchers_eval.png").is_file()


def test_missing_demo_datasets_are_regenerated_image_and_video(tmp_path: Path):
    """Without cached fingerprints, demo members (image and video) are regenerated and checked by content hash."""
    from metafeatures.datasets import open_collection
    from metafeatures.demo import generate_demo_collection
    from metafeatures.demo_video import generate_video_demo
    from metafeatures.summary import content_hash
    from portfolio.eval_data import _from_demo, demo_collection_dir

    reference = tmp_path / "reference"
    generate_demo_collection(reference, progress=False, only=["hues"])
    generate_video_demo(reference, progress=False, only=["video_shapes"])
    hashes = {name: content_hash(ds) for name, ds in open_collection(reference).items()}
    said: list[str] = []
    found = _from_demo(["hues", "video_shapes"], hashes, 0, False, said.append)
    assert sorted(found) == ["hues", "video_shapes"] and found["video_shapes"].modality == "video"
    assert said and str(demo_collection_dir(0)) in said[0]
    with pytest.raises(ArtifactError, match="differ"):
        _from_demo(["video_shapes"], {"video_shapes": "0" * 64}, 0, False, said.append)
