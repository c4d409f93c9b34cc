"""`guanaco sweep` on the CPU: a 4-point grid (target modules x 4/8 bits) on a tiny Llama, a few
steps each, answers on held-out product prompts, every pair judged both ways by the scripted
OpenAI-compatible server over real HTTP; then a resume after a kill, people's votes, the release."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from arena.cli import UserError, main
from arena.store import Contestant, Generation, Judgment, Run, Store
from arena.sweep.config import PRODUCTS, SweepConfig, build_config, points
from arena.sweep.judging import SMALL_JUDGE_TEMPLATE
from arena.sweep.training import MARKER
from arena.sweep.workflow import run_sweep
from tests.scripted_server import scripted_server_fixture  # noqa: F401
from tests.trainer_tiny import tiny_checkpoint

TRAIN = {"preset": "smoke", "max_steps": 2, "max_seq_len": 384, "batch_size": 2, "grad_accum": 1,
         "eval_steps": 2, "save_steps": 1, "max_eval_samples": 4, "learning_rate": 0.01}  # fmt: skip
GRID = {"target_modules": ["qv", "all"], "bits": [4, 8]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


def prefer_longer(body: dict) -> str:
    """The scripted judge: the longer answer wins (a rule the ratings can pick up), 3 on a tie."""
    text = body["messages"][-1]["content"]
    one = re.search(r"Answer 1: (.*?)\n\nAnswer 2: ", text, re.S).group(1)
    two = re.search(r"Answer 2: (.*?)\n\nWhich answer", text, re.S).group(1)
    return "1" if len(one) > len(two) else "2" if len(two) > len(one) else "3"


def sweep_config(tiny: Path, out: Path, url: str, **changes) -> SweepConfig:
    values = dict(name="products-test", base=str(tiny), grid=GRID, train=TRAIN, out=str(out), prompts=3,
                  max_new_tokens=12, temperature=0.0, judge_model="scripted", judge_name="scripted-judge",
                  base_url=url, template=str(SMALL_JUDGE_TEMPLATE), concurrency=4, bootstrap=50)  # fmt: skip
    return build_config(overrides={**values, **changes})


def test_cpu_sweep_trains_judges_rates_resumes_and_releases(
    tiny: Path, tmp_path: Path, db_url: str, scripted_server
) -> None:
    scripted_server.reply = prefer_longer
    out = tmp_path / "sweep"
    cfg = sweep_config(tiny, out, scripted_server.url)
    store = Store(db_url)
    result = run_sweep(store, cfg)

    names = [
        "products-test-qv-4bit",
        "products-test-qv-8bit",
        "products-test-all-4bit",
        "products-test-all-8bit",
    ]
    table = result.table
    assert list(table["model"]) == names
    assert {"target_modules", "bits", "trainable_params", "train_seconds", "peak_memory_mb", "eval_loss",
            "rating", "lower", "upper", "rank"} <= set(table.columns)  # fmt: skip
    params = dict(zip(table["model"], table["trainable_params"], strict=True))
    # tiny Llama, r=8: q,v: 2 layers x 2 x (64*8 + 8*32 or 8*64); all: every linear layer and lm_head
    assert (
        params["products-test-qv-4bit"]
        == params["products-test-qv-8bit"]
        == 2 * (8 * 64 + 8 * 64 + 8 * 64 + 8 * 32)
    )
    assert params["products-test-all-4bit"] > 4 * params["products-test-qv-4bit"]
    assert table["eval_loss"].notna().all() and (table["train_seconds"] > 0).all()
    assert (table["matches"] == 3 * 3 * 2).all()  # 3 opponents x 3 prompts x both orders
    assert (table["lower"] <= table["rating"]).all() and (table["rating"] <= table["upper"]).all()
    csv = pd.read_csv(result.csv, comment="#")
    assert list(csv["model"]) == names
    assert "| model |" in result.markdown.read_text() and result.plot.stat().st_size > 10_000

    with store.session() as session:
        judgments = session.scalars(select(Judgment).where(Judgment.judge == "scripted-judge")).all()
        pairs = {(j.generation1_id, j.generation2_id) for j in judgments}
        assert len(judgments) == 6 * 3 * 2 and all((g2, g1) in pairs for g1, g2 in pairs)
        assert session.scalar(select(Generation.id).where(Generation.prompt_id.is_(None))) is None
        contestants = {c.name: c for c in session.scalars(select(Contestant))}
        assert contestants["products-test-all-8bit"].quantization == "int8"
        meta = contestants["products-test-qv-8bit"].meta["sweep"]
        assert meta["settings"] == {"target_modules": "qv", "bits": 8}
        assert meta["train"]["train_on"] == "assistant" and meta["train"]["target_modules"] == [
            "q_proj",
            "v_proj",
        ]
        assert meta["prompt_template"] == "### Human: {instruction}\n\n{input}### Assistant: {output}<eos>"
        assert meta["data"] == "products.jsonl" and str(tmp_path) not in json.dumps(meta)
        (sweep_run,) = session.scalars(select(Run).where(Run.kind == "sweep"))
        assert sweep_run.status == "done" and sweep_run.config["base"] == tiny.name
        assert str(tmp_path) not in json.dumps(sweep_run.config)  # runs go into releases: no machine paths
    int8 = json.loads((out / "products-test-qv-8bit" / "metrics.json").read_text())["model"]
    nf4 = json.loads((out / "products-test-qv-4bit" / "metrics.json").read_text())["model"]
    assert 8 < int8["bits_per_weight_measured"] < 9 and 4 < nf4["bits_per_weight_measured"] < 5

    # killed while training the third point after its first checkpoint: only that point trains again
    point = out / "products-test-all-4bit"
    markers = {p.name: (p / MARKER).stat().st_mtime_ns for p in out.iterdir() if (p / MARKER).is_file()}
    for leftover in ("checkpoint-2", MARKER, "adapter_model.safetensors", "metrics.json"):
        target = point / leftover
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    requests = len(scripted_server.requests)
    again = run_sweep(store, cfg)
    record = json.loads((point / MARKER).read_text())
    assert record["time_estimated"] is True and record["steps"] == 2
    for name, mtime in markers.items():
        if name != point.name:
            assert (out / name / MARKER).stat().st_mtime_ns == mtime, name
    assert len(scripted_server.requests) == requests  # answers and judgments were all stored already
    assert list(again.table["rating"]) == list(table["rating"])

    # people: the same answers queued for the arena, a vote rates them
    from arena.release.export import export_bundle
    from arena.release.load import read_table
    from arena.votes import next_battle, record_vote

    human = sweep_config(tiny, out, None, human=True, judge_name=None, template=None)
    queued = run_sweep(store, human)
    assert "guanaco app --benchmark products-test" in queued.messages[0] and queued.plot is None
    with store.session() as session:
        battle = next_battle(session, "ana", benchmark="products-test")
    assert record_vote(store, battle, "ana", "1")
    voted = run_sweep(store, human).table
    assert voted["matches"].sum() == 2 and len(scripted_server.requests) == requests

    files = export_bundle(store, tmp_path / "release")
    rows = {r["name"]: r for _, _, r in read_table(tmp_path / "release", "contestants")}
    assert rows["products-test-all-8bit"]["meta"]["sweep"]["settings"] == {"target_modules": "all", "bits": 8}
    assert any(name.startswith("judgments") for name in files)


def test_dry_run_prints_trainings_generations_judgments_and_dollars(
    tiny: Path, tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from judges.tokens import exact_for

    argv = ["sweep", "--db", db_url, "--base", str(tiny), "--out", str(tmp_path / "s"), "--dry-run",
            "--grid", "lora_r=8,16,64", "target_modules=qv,all", "bits=4,8", "--set", "preset=smoke",
            "--judge-model", "gpt-4", "--template", str(SMALL_JUDGE_TEMPLATE), "--prompts", "5"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "sweep products-sweep: 12 settings x 5 held-out prompts of products.jsonl" in text
    assert "products-sweep-r64-all-8bit" in text
    assert "trainings: 12 (0 finished, 12 to train)" in text
    assert "generations: 60 (0 stored, 60 to generate)" in text
    assert "judgments: 660 (0 stored, 660 to judge" in text  # 66 pairs x 5 prompts x 2 orders
    cost = float(re.search(r"estimated at most \$([\d,.]+)", text).group(1).replace(",", ""))
    # prompts are under 1,500 tokens, or 4x that as bounded by UTF-8 bytes where tiktoken cannot load
    prompt_cap = 1500 if exact_for("gpt-4") else 6000
    assert 660 * 1024 * 0.06 / 1000 < cost < 660 * (1024 * 0.06 + prompt_cap * 0.03) / 1000
    assert not (tmp_path / "s").exists()  # nothing trained, nothing written


def test_the_sample_is_alpaca_and_held_out_prompts_come_from_its_eval_split(
    tiny: Path, tmp_path: Path
) -> None:
    from trainer.data import load_splits

    train, held, report, _ = load_splits(str(PRODUCTS), None, None, 0.2)
    assert len(train) + len(held) == 40 and report.skipped == {} and 4 <= len(held) <= 14
    cfg = build_config(overrides={"base": str(tiny), "grid": {"lora_r": ["4"]}, "out": str(tmp_path)})
    (point,) = points(cfg)
    assert point.name == "products-sweep-r4" and point.train.lora_r == 4 and point.train.format is None
    from arena.sweep.prompts import held_out_prompts

    rows = held_out_prompts(cfg, point)
    assert [r["turns"][0] for r in rows] == [c[0].text for c in held][: cfg.prompts]
    assert all(r["turns"][0].startswith("Write a short product description") for r in rows)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"grid": {"lora_rank": ["8"]}}, "'lora_rank' is not a trainer field"),
        ({"grid": {"base": ["a", "b"]}}, "must be the same for every point"),
        ({"grid": {"lora_r": ["eight"]}}, "grid lora_r='eight': not a valid value"),
        ({"grid": {"bits": ["3"]}}, "field bits: qlora takes 4, 8, not 3"),
        ({"grid": {"target_modules": ["q_proj,v_proj"]}}, "join module names with '+'"),
        ({"data": "nobody/product-descriptions"}, "nobody/product-descriptions is not a local file or folder, and cannot be loaded from the hub"),
        ({"data": "missing.jsonl"}, "missing.jsonl: data file not found"),
        ({"human": True, "base_url": "http://127.0.0.1:1/v1"}, "--human queues the answers"),
    ],
)  # fmt: skip
def test_bad_settings_are_clear_errors(
    tiny: Path, tmp_path: Path, db_url: str, changes: dict, message: str
) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        cfg = build_config(overrides={"base": str(tiny), "out": str(tmp_path / "s"), **changes})
        run_sweep(Store(db_url), cfg)
    assert not (tmp_path / "s").exists()


def test_config_file_errors_name_the_line_and_a_torn_marker_does_not_count(
    tiny: Path, tmp_path: Path
) -> None:
    config = tmp_path / "sweep.yaml"
    config.write_text("name: t\ngrid:\n  lora_r: [8]\njudge: gpt-4\n")
    with pytest.raises(UserError, match=r"sweep.yaml, line 4: unknown field 'judge'"):
        build_config(config)
    config.write_text(
        f"name: t\nbase: {tiny}\nout: {tmp_path}\ngrid:\n  lora_r: [8]\ntrain:\n  max_steps: 3\n"
    )
    (point,) = points(build_config(config))
    assert point.train.max_steps == 3
    from arena.sweep.training import finished, write_marker

    point.folder.mkdir(parents=True)
    (point.folder / f".{MARKER}.tmp").write_text('{"name": "t-r8", "trainable')  # a write killed midway
    assert finished(point) is None
    write_marker(point.folder, {"name": "t-r8"})
    assert finished(point) == {"name": "t-r8"} and not (point.folder / f".{MARKER}.tmp").exists()


def test_an_alpaca_record_trains_on_its_response_only() -> None:
    from tests.test_trainer_data import split_tokens
    from tests.trainer_tiny import tiny_tokenizer
    from trainer.data import load_splits
    from trainer.encode import Encoder

    record = json.loads(PRODUCTS.read_text().splitlines()[0])
    train, held, _, _ = load_splits(str(PRODUCTS), "alpaca", None, 0.2)
    (conv,) = [c for c in train + held if c[1].text == record["output"]]
    tok = tiny_tokenizer()
    example, cut = Encoder(tok, "guanaco", "assistant", 1024).encode(conv)
    assert not cut
    assert split_tokens(tok, example) == (
        f" {record['output']}</s>",
        f"<s>### Human: {record['instruction']}\n\n{record['input']}### Assistant:",
    )
