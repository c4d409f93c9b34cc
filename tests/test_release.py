"""The release bundle: byte-identical exports, round trips, no secrets, pseudonyms, checksums,
FastChat battles, and the real QLoRA release through export and re-import."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select

from arena.cli import UserError, main
from arena.query.judgments import read_judgments
from arena.query.writes import insert_ignore
from arena.release.config import ReleaseConfig
from arena.release.export import export_bundle
from arena.release.load import import_bundle, verify_bundle
from arena.release.pseudonyms import PSEUDONYM_KEY_ENV, Pseudonyms, pseudonym_key
from arena.release.schema import CHECKSUMS
from arena.store import Contestant, Generation, Judgment, Prompt, Run, Secret, Store
from tests.handmade import add_judgments, both_orders, tag

GPT4 = "openai:gpt-4-0613"
SECRETS = (
    "sk-plantedSECRET0123456789abcdef",
    "hunter2-planted",
    "hf_plantedTOKEN0123456789abcdefgh",
    "eyJplanted.jwt",
)
FAST = ReleaseConfig(leaderboard_orderings=20)


def _arena(store: Store) -> None:
    """Model judge and people, both orders, a tag, and secrets planted wherever metadata goes."""
    rows = both_orders("1", "a", "b", GPT4, "1", "2") + both_orders("2", "a", "c", GPT4, "2", "tie")
    rows += [("1", "b", "c", "human:alice", "both_bad"), ("2", "c", "b", "human:bob", "1")]
    config = {"judge": GPT4, "temperature": 0.0, "max_tokens": 512, "api_key": SECRETS[0],
              "headers": {"Authorization": f"Bearer {SECRETS[3]}"}}  # fmt: skip
    add_judgments(store, rows, run_config=config)
    tag(store, GPT4, "1", "a", "b", "alice", "a missed the point")
    with store.session() as session:
        session.get(Contestant, 1).meta = {"hf_token": SECRETS[2], "note": "a"}
        generation = session.scalars(select(Generation)).first()
        generation.params = {"temperature": 0.7, "password": SECRETS[1], "eos_token": "</s>"}
        judgment = session.scalars(select(Judgment).where(Judgment.judge == "human:alice")).one()
        judgment.meta = {"annotator": "alice", "ip": "10.0.0.7"}
        session.scalars(select(Judgment)).first().raw = f"error: Incorrect API key provided: {SECRETS[0]}"


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


def _all_text(directory: Path) -> str:
    """Every file's text, Parquet decoded, so that compression cannot hide a string."""
    parts = []
    for path in sorted(directory.rglob("*")):
        if path.suffix == ".parquet":
            parts.append(pq.read_table(path).to_pandas().to_json())
        elif path.is_file():
            parts.append(path.read_text(encoding="utf-8"))
    return "\n".join(parts)


def test_export_is_byte_identical_and_round_trips(store, tmp_path):
    _arena(store)
    first = export_bundle(store, tmp_path / "one", FAST)
    export_bundle(store, tmp_path / "two", ReleaseConfig(formats=("parquet",), leaderboard_orderings=20))
    export_bundle(store, tmp_path / "two", FAST)  # over an earlier bundle: nothing stale is left
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    assert {"judgments.parquet", "tags.jsonl", "battles.json", "README.md", CHECKSUMS} <= set(first)
    assert any(name.startswith("leaderboards/vicuna.human.") for name in first)

    copy = Store(f"sqlite:///{tmp_path / 'copy.db'}")
    counts = import_bundle(copy, tmp_path / "one")
    assert counts == {"runs": 1, "prompts": 2, "contestants": 3, "generations": 6, "judgments": 6, "tags": 1}
    export_bundle(copy, tmp_path / "again", FAST)
    assert _files(tmp_path / "again") == _files(tmp_path / "one")
    assert set(import_bundle(copy, tmp_path / "one").values()) == {0}  # a second import adds nothing

    parquet_only = ReleaseConfig(formats=("parquet",), leaderboard_orderings=20)
    export_bundle(store, tmp_path / "parquet", parquet_only)
    from_parquet = Store(f"sqlite:///{tmp_path / 'from-parquet.db'}")
    assert import_bundle(from_parquet, tmp_path / "parquet") == counts
    export_bundle(from_parquet, tmp_path / "parquet-again", parquet_only)
    assert _files(tmp_path / "parquet-again") == _files(tmp_path / "parquet")


def _edit(bundle: Path, name: str, old: str, new: str) -> None:
    """Change a bundle file and its SHA256SUMS line, as a careless hand edit would."""
    path = bundle / name
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_text(path.read_text().replace(old, new, 1))
    sums = bundle / CHECKSUMS
    sums.write_text(sums.read_text().replace(digest, hashlib.sha256(path.read_bytes()).hexdigest()))


def test_bad_bundle_names_file_line_and_field_and_stores_nothing(store, tmp_path):
    _arena(store)
    bundle = tmp_path / "bundle"
    export_bundle(store, bundle, FAST)
    (bundle / "tags.parquet").unlink()  # read the JSONL only
    tag_row = json.loads((bundle / "tags.jsonl").read_text())
    _edit(bundle, "tags.jsonl", tag_row["judgment_id"], "0000000000000000")
    sums = bundle / CHECKSUMS
    sums.write_text("".join(line for line in sums.read_text().splitlines(True) if "tags.parquet" not in line))
    empty = Store(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(
        UserError, match=r"tags.jsonl:1: field 'judgment_id' = '0000000000000000' names no record"
    ):
        import_bundle(empty, bundle)
    with empty.session() as session:
        assert session.scalars(select(Prompt)).all() == []  # one transaction: nothing half-written
    _edit(bundle, "judgments.jsonl", '"verdict":"1"', '"verdict":"A"')
    with pytest.raises(UserError, match=r"judgments.jsonl:\d+: field 'verdict' = 'A'"):
        import_bundle(empty, bundle)


def test_no_secret_ever_appears(store, tmp_path):
    _arena(store)
    export_bundle(store, tmp_path / "bundle", FAST)
    text = _all_text(tmp_path / "bundle")
    for secret in SECRETS:
        assert secret not in text
    runs = [json.loads(line) for line in (tmp_path / "bundle" / "runs.jsonl").read_text().splitlines()]
    assert runs[0]["config"]["api_key"] == "[redacted]" and runs[0]["config"]["max_tokens"] == 512
    assert '"eos_token":"</s>"' in (tmp_path / "bundle" / "generations.jsonl").read_text()


def test_annotators_get_keyed_pseudonyms_by_default(store, tmp_path, monkeypatch):
    monkeypatch.delenv(PSEUDONYM_KEY_ENV, raising=False)
    _arena(store)
    export_bundle(store, tmp_path / "bundle", FAST)
    text = _all_text(tmp_path / "bundle")
    assert "alice" not in text and "bob" not in text and "10.0.0.7" not in text
    with store.session() as session:
        pseudonym = Pseudonyms(pseudonym_key(session))
        key = session.scalars(select(Secret.value)).one()
    alice = pseudonym("alice")
    assert alice.startswith("annotator-") and pseudonym(alice) == alice and key not in text
    judgments = pd.read_json(tmp_path / "bundle" / "judgments.jsonl", lines=True)
    assert f"human:{alice}" in set(judgments.judge) and GPT4 in set(judgments.judge)
    tags = pd.read_json(tmp_path / "bundle" / "tags.jsonl", lines=True)
    assert list(tags.annotator) == [alice]
    # a list of guessed names, hashed without the key, re-identifies no one
    for guess in ("alice", "bob", "carol", "admin"):
        digest = hashlib.sha256(guess.encode()).hexdigest()
        assert digest[:8] not in text and digest[:16] not in text

    assert main(["release", "--db", store.url, "--out", str(tmp_path / "real"), "--real-names",
                 "--orderings", "20"]) == 0  # fmt: skip
    assert "human:alice" in (tmp_path / "real" / "judgments.jsonl").read_text()


def test_a_shared_pseudonym_key_gives_two_stores_the_same_pseudonyms(tmp_path, monkeypatch):
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "shared secret of the arena operators")
    for name in ("one", "two"):
        store = Store(f"sqlite:///{tmp_path / f'{name}.db'}")
        add_judgments(store, [("1", "a", "b", "human:alice", "1")])
        export_bundle(store, tmp_path / name, FAST)
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    assert "shared secret" not in _all_text(tmp_path / "one")


def test_card_checksums_and_tampering(store, tmp_path):
    _arena(store)
    bundle = tmp_path / "bundle"
    export_bundle(store, bundle, FAST)
    listed = verify_bundle(bundle)
    assert set(listed) == set(_files(bundle)) - {CHECKSUMS}
    card = (bundle / "README.md").read_text()
    assert "| judgments | 6 |" in card and "| tags | 1 |" in card
    assert "pairwise-v1pairwise-v1" in card  # the template hash of every judgment
    assert '{"temperature": 0.7, "top_p": 0.9}' in card  # sampling parameters
    assert "| MIT |" in card  # licence from the benchmark registry, matched by source
    for name, digest in listed.items():
        if name != "README.md":
            assert f"| `{name}` | {digest} |" in card
    with (bundle / "judgments.jsonl").open("a") as handle:
        handle.write("\n")
    with pytest.raises(UserError, match=r"judgments.jsonl: sha256 differs"):
        import_bundle(Store(f"sqlite:///{tmp_path / 'other.db'}"), bundle)


def test_fastchat_battles_and_parquet_agree_with_jsonl(store, tmp_path):
    _arena(store)
    export_bundle(store, tmp_path / "bundle", ReleaseConfig(pseudonymise=False, leaderboard_orderings=20))
    battles = json.loads((tmp_path / "bundle" / "battles.json").read_text())
    assert len(battles) == 6
    assert {"model_a", "model_b", "winner", "judge", "question_id", "turn", "anony", "tstamp"} <= set(
        battles[0]
    )
    winners = {(b["question_id"], b["model_a"], b["model_b"], b["judge"]): b["winner"] for b in battles}
    assert winners[("vicuna/1", "a", "b", GPT4)] == "model_a"
    assert winners[("vicuna/2", "c", "a", GPT4)] == "tie"
    assert winners[("vicuna/1", "b", "c", "human:alice")] == "tie (bothbad)"
    jsonl = pd.read_json(tmp_path / "bundle" / "judgments.jsonl", lines=True, dtype=False)
    parquet = pd.read_parquet(tmp_path / "bundle" / "judgments.parquet")
    assert list(parquet.columns) == list(jsonl.columns)
    assert list(parquet.judgment_id) == list(jsonl.judgment_id) and list(parquet.raw) == list(jsonl.raw)


def test_the_judged_turn_travels_and_older_bundles_mean_turn_one(store, tmp_path):
    from sqlalchemy import update

    _arena(store)
    with store.session() as session:
        first = session.scalars(select(Judgment.id).order_by(Judgment.id)).first()
        session.execute(update(Judgment).where(Judgment.id == first).values(turn=2))
    export_bundle(store, tmp_path / "bundle", FAST)
    rows = [json.loads(line) for line in (tmp_path / "bundle" / "judgments.jsonl").read_text().splitlines()]
    battles = json.loads((tmp_path / "bundle" / "battles.json").read_text())
    assert sorted(r["turn"] for r in rows) == [1, 1, 1, 1, 1, 2]
    assert {b["judgment_id"]: b["turn"] for b in battles} == {
        r["judgment_id"]: r["turn"] for r in rows if r["status"] == "ok" and r["verdict"]
    }
    copy = Store(f"sqlite:///{tmp_path / 'copy.db'}")
    import_bundle(copy, tmp_path / "bundle")
    with copy.session() as session:
        assert sorted(session.scalars(select(Judgment.turn))) == [1, 1, 1, 1, 1, 2]

    older = tmp_path / "older"
    shutil.copytree(tmp_path / "bundle", older)
    for r in rows:
        del r["turn"]
    old_text = (tmp_path / "bundle" / "judgments.jsonl").read_text()
    path = older / "judgments.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sums = older / CHECKSUMS
    digest = hashlib.sha256(old_text.encode()).hexdigest()
    sums.write_text(sums.read_text().replace(digest, hashlib.sha256(path.read_bytes()).hexdigest()))
    (older / "judgments.parquet").unlink()
    sums.write_text(
        "".join(line + "\n" for line in sums.read_text().splitlines() if "judgments.parquet" not in line)
    )
    fresh = Store(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert import_bundle(fresh, older)["judgments"] == 6
    with fresh.session() as session:
        assert set(session.scalars(select(Judgment.turn))) == {1}


def test_ids_come_from_content_not_row_numbers(tmp_path):
    one = Store(f"sqlite:///{tmp_path / 'one.db'}")
    two = Store(f"sqlite:///{tmp_path / 'two.db'}")
    add_judgments(two, [("9", "z", "y", GPT4, "1")], benchmark="oa")  # shifts every row id in `two`
    for store in (one, two):
        add_judgments(store, both_orders("1", "a", "b", GPT4, "1", "2"))
    config = ReleaseConfig(benchmark="vicuna", leaderboard_orderings=20)
    export_bundle(one, tmp_path / "one", config)
    export_bundle(two, tmp_path / "two", config)
    assert _files(tmp_path / "one") == _files(tmp_path / "two")
    with two.session() as session:
        assert session.scalar(select(Prompt.id).where(Prompt.benchmark == "vicuna")) != 1


def test_bad_input_is_a_clear_error(db_url, tmp_path, capsys):
    store = Store(db_url)  # an empty store (a missing one: tests/test_cli_errors.py)
    assert main(["release", "--db", db_url, "--out", str(tmp_path / "b")]) == 2
    assert "nothing to release" in capsys.readouterr().err
    with store.session() as session:
        insert_ignore(session, Prompt, [{"benchmark": "vicuna", "key": "1", "turns": ["q"]}])
        session.add(Run(kind="x", name="y", config={}))
    assert main(["release", "--db", db_url, "--out", str(tmp_path / "b"), "--format", "csv"]) == 2
    assert "--format: unknown ['csv']" in capsys.readouterr().err
    assert main(["load-release", "--db", db_url, str(tmp_path)]) == 2
    assert "no SHA256SUMS" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["release", "--db", db_url, "--out", str(tmp_path)]) == 2
    assert "not empty and holds no release bundle" in capsys.readouterr().err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_release_config_is_built_from_the_flags_and_refuses_an_unknown_format():
    assert ReleaseConfig.from_flags("vicuna", " parquet, jsonl ,", True, 50) == ReleaseConfig(
        benchmark="vicuna", formats=("parquet", "jsonl"), pseudonymise=False, leaderboard_orderings=50
    )
    assert ReleaseConfig.from_flags(None, "jsonl,parquet", False, 200) == ReleaseConfig()
    for formats in ((), ("jsonl", "csv")):
        with pytest.raises(UserError, match="--format: unknown"):
            ReleaseConfig(formats=formats)


@pytest.fixture(scope="module")
def qlora_store(shared_data, tmp_path_factory) -> Store:
    """The QLoRA evaluation release imported once (about 40k judgments; a few seconds)."""
    from arena.import_qlora import import_qlora_release

    store = Store(f"sqlite:///{tmp_path_factory.mktemp('qlora') / 'arena.db'}")
    import_qlora_release(store, shared_data, progress=False)
    return store


def test_qlora_release_round_trips(qlora_store, tmp_path, capsys):
    bundle, again = tmp_path / "bundle", tmp_path / "again"
    args = ["--benchmark", "vicuna", "--orderings", "20"]
    assert main(["release", "--db", qlora_store.url, "--out", str(bundle), *args]) == 0
    listed = verify_bundle(bundle)
    judgments = read_judgments(qlora_store, benchmark="vicuna")
    with qlora_store.session() as session:
        generations = session.scalar(
            select(func.count(Generation.id))
            .join(Prompt, Prompt.id == Generation.prompt_id)
            .where(Prompt.benchmark == "vicuna")
        )
    card = (bundle / "README.md").read_text()
    assert f"| judgments | {len(judgments)} |" in card and f"| generations | {generations} |" in card
    assert sum(1 for _ in (bundle / "judgments.jsonl").open()) == len(judgments)
    battles = json.loads((bundle / "battles.json").read_text())
    assert len(battles) == judgments.status.eq("ok").sum()
    assert "| MIT |" in card and "leaderboards/vicuna.gpt-4.qlora-vicuna-threeclass.elo.csv" in listed

    copy = f"sqlite:///{tmp_path / 'copy.db'}"
    assert main(["load-release", "--db", copy, str(bundle)]) == 0
    assert f"judgments {len(judgments)}" in capsys.readouterr().out
    assert main(["release", "--db", copy, "--out", str(again), *args]) == 0
    assert _files(again) == _files(bundle)


@pytest.fixture(params=["sqlite", "postgresql"])
def planted_db(request, tmp_path) -> Iterator[str]:
    """The store's URL, itself a secret to keep: a file under a home folder, or a PostgreSQL URL
    with its password and a planted query."""
    if request.param == "sqlite":
        home = tmp_path / "home" / "ann-planted"
        home.mkdir(parents=True)
        yield f"sqlite:///{home / 'arena.db'}"
        return
    from tests.conftest import POSTGRES_URL
    from tests.databases import postgres_schema

    if not POSTGRES_URL:
        pytest.skip("PostgreSQL not available: set GUANACO_TEST_POSTGRES_URL (make test does)")
    with postgres_schema(POSTGRES_URL) as url:
        yield url + "&application_name=planted_pg_query"


def test_a_release_carries_no_credential_and_no_machine_path(planted_db, tmp_path, monkeypatch, capsys):
    """Plant a database URL (with its password), credentials in --base-url, an API key in the
    environment and home paths wherever a run or a contestant records them; then grep every byte
    of the release, Parquet decoded too."""
    from sqlalchemy.engine import make_url

    from tests.judge_helpers import MODELS, fill_store, threeclass_judge
    from tests.scripted_server import ScriptedServer

    home = tmp_path / "home" / "ann-planted"
    home.mkdir(parents=True, exist_ok=True)
    env_key = "sk-plantedENVKEY0123456789abcdefABCD"
    monkeypatch.setenv("OPENAI_API_KEY", env_key)
    monkeypatch.setenv("HOME", str(home))
    costs = home / "prices.json"
    costs.write_text(json.dumps({"gpt-4": {"prompt": 0.03, "completion": 0.06}}))
    store = Store(planted_db)
    fill_store(store, prompts=2)
    with store.session() as session:
        for prompt in session.scalars(select(Prompt)):
            prompt.source = str(home / "benchmarks" / "vicuna-questions.jsonl")
        alpha = session.scalars(select(Contestant).where(Contestant.name == "alpha")).one()
        alpha.kind, alpha.base_model, alpha.adapter = (
            "local",
            str(home / "models" / "base"),
            str(home / "runs" / "lora"),
        )
        alpha.meta = {"endpoint": "https://planted-user:planted-pass@api.example/v1?key=planted-query-token"}
        for generation in session.scalars(select(Generation)):
            generation.meta = {"cache": f"{home}/cache/x.json", "note": f"read from {home / 'notes.txt'}"}
    with ScriptedServer(reply=threeclass_judge) as server:
        base_url = server.url.replace("http://", "http://planted-user:planted-pass@")
        argv = ["judge", "--db", planted_db, "--benchmark", "vicuna", "--models", ",".join(MODELS),
                "--judge-model", "gpt-4", "--base-url", base_url, "--costs", str(costs), "--budget-usd", "5"]  # fmt: skip
        assert main(argv) == 0
        assert server.requests[0]["headers"]["authorization"].startswith("Basic ")  # the credentials worked
    assert len(read_judgments(store)) == 12
    bundle = tmp_path / "bundle"
    assert main(["release", "--db", planted_db, "--out", str(bundle), "--orderings", "20"]) == 0
    capsys.readouterr()

    password = make_url(planted_db.split("?")[0]).password
    planted = [env_key, "planted-user", "planted-pass", "planted-query-token", "planted_pg_query", str(home),
               "ann-planted", str(tmp_path), "cGxhbnRlZC11c2Vy", planted_db]  # fmt: skip
    if password:
        planted += [f":{password}@"]
    raw = b"".join(path.read_bytes() for path in sorted(bundle.rglob("*")) if path.is_file())
    text = _all_text(bundle)
    for secret in planted:
        assert secret.encode() not in raw and secret not in text, secret
    runs = [json.loads(line) for line in (bundle / "runs.jsonl").read_text().splitlines()]
    config = runs[0]["config"]
    assert config["endpoint"] == server.url and config["price_per_1k"] == {"prompt": 0.03, "completion": 0.06}
    assert "db" not in config and "costs" not in config
    contestant = json.loads((bundle / "contestants.jsonl").read_text().splitlines()[0])
    assert (contestant["base_model"], contestant["adapter"]) == ("base", "lora")
    prompts = json.loads((bundle / "prompts.jsonl").read_text().splitlines()[0])
    assert prompts["source"] == "vicuna-questions.jsonl"


def test_run_config_is_an_allowlist() -> None:
    """Whatever else is on the command line (or added to it later) is not stored."""
    from arena.cli import build_parser
    from arena.tournament.config import TournamentConfig
    from arena.tournament.run_record import stored_config
    from arena.tournament.workflow import judge_config
    from foundations.configs import from_args
    from judges.judge import Price
    from judges.templates import load_template

    args = build_parser().parse_args(
        ["judge", "--db", "postgresql+psycopg://arena:planted-pg-pass@db.example/arena", "--benchmark", "vicuna",
         "--models", "a,b", "--base-url", "https://u:planted-pass@judge.example/v1?token=planted-q",
         "--costs", "/home/ann/prices.json"]
    )  # fmt: skip
    args.some_future_flag = "/home/ann/secret-file"
    config = from_args(TournamentConfig, args)
    cfg = judge_config(config, load_template("qlora-vicuna"), Price(0.03, 0.06))
    stored = json.dumps(stored_config(config, cfg, 4))
    for planted in ("planted-pg-pass", "planted-pass", "planted-q", "/home/ann", "db.example"):
        assert planted not in stored
    assert '"endpoint": "https://judge.example/v1"' in stored


def test_release_deletes_only_the_files_it_wrote_inside_out(store, tmp_path):
    _arena(store)
    out = tmp_path / "out"
    export_bundle(store, out, FAST)
    before = _files(out)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.csv").write_text("keep me too")
    sums = out / CHECKSUMS
    original = sums.read_text()
    for name in ("../victim.txt", str(victim), "leaderboards/../../victim.txt", "notes.txt"):
        sums.write_text(original + f"{'0' * 64}  {name}\n")
        with pytest.raises(UserError, match="which no release writes; nothing was deleted"):
            export_bundle(store, out, FAST)
        assert victim.read_text() == "keep me"
        assert {k: v for k, v in _files(out).items() if k != CHECKSUMS} == {
            k: v for k, v in before.items() if k != CHECKSUMS
        }
    sums.write_text(original + f"{'0' * 64}  leaderboards/x.csv\n")
    for board in (out / "leaderboards").iterdir():
        board.unlink()
    (out / "leaderboards").rmdir()
    (out / "leaderboards").symlink_to(elsewhere)  # a link out of the bundle
    with pytest.raises(UserError, match="which no release writes"):
        export_bundle(store, out, FAST)
    assert (elsewhere / "x.csv").read_text() == "keep me too"


def test_load_release_refuses_unlisted_tables_and_paths_before_writing(store, tmp_path):
    _arena(store)
    bundle = tmp_path / "bundle"
    export_bundle(store, bundle, FAST)
    sums = bundle / CHECKSUMS
    original = sums.read_text()
    empty = Store(f"sqlite:///{tmp_path / 'empty.db'}")

    def refused(listing: str, match: str) -> None:
        sums.write_text(listing)
        with pytest.raises(UserError, match=match):
            import_bundle(empty, bundle)
        with empty.session() as session:
            assert session.scalars(select(Prompt)).all() == []

    unlisted = "".join(line for line in original.splitlines(True) if not line.endswith("  judgments.jsonl\n"))
    refused(unlisted, r"judgments.jsonl: not listed in SHA256SUMS")
    outside = tmp_path / "outside.jsonl"
    outside.write_text("{}\n")
    digest = hashlib.sha256(outside.read_bytes()).hexdigest()
    refused(
        original + f"{digest}  ../outside.jsonl\n", r"'../outside.jsonl' is not a file of a release bundle"
    )
    refused(original + f"{digest}  {outside}\n", r"is not a file of a release bundle")
    sums.write_text(original)
    assert import_bundle(empty, bundle)["judgments"] == 6


@pytest.mark.parametrize(
    ("text", "content", "expected"),
    [
        ("https://u:pw@judge.example:8443/v1?key=s#f", False, "https://judge.example:8443/v1"),
        ("https://u:pw@judge.example/v1?q=1", True, "https://judge.example/v1?q=1"),
        ("see https://a.example/b?q=1 now", True, "see https://a.example/b?q=1 now"),
        ("postgresql+psycopg://arena:pw@db:5432/x?sslmode=require", False, "postgresql+psycopg://db:5432/x"),
        ("sqlite:////home/ann/arena.db", False, "sqlite:///arena.db"),
        ("read /home/ann/x/y.json, ~/z and ../../up/w.txt", False, "read y.json, z and w.txt"),
        ("and/or 1/2 qlora-eval/answers/x.jsonl", False, "and/or 1/2 qlora-eval/answers/x.jsonl"),
        ("C:\\Users\\ann\\x.txt", False, "x.txt"),
        ("run `ls /usr/bin` in /home/ann", True, "run `ls /usr/bin` in /home/ann"),
        ("http://[::1]:8000/v1", False, "http://[::1]:8000/v1"),
    ],
)
def test_redaction_of_urls_and_paths(text: str, content: bool, expected: str) -> None:
    from arena.redact import redact_text

    assert redact_text(text, content) == expected
