"""The arena attacked over raw HTTP through Gradio's queue (no browser, no gradio_client): voting
under other names, twice, on swapped pairs, on someone else's battle, peeking at the models, other
sites' pages, floods, password guessing, and serving the world without logins."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from arena.cli import main
from arena.passwords import Authenticator, add_user, read_auth_file
from arena.query.judgments import read_judgments
from arena.store import Generation, Store
from arena.webguard import RateLimiter, RateLimits
from tests.arena_seed import running_app, seed_arena
from tests.gradio_http import VOTE_APIS, RawGradio

GENEROUS = RateLimits().scaled(100)
MODELS = ("zebra-7b", "yak-13b", "quokka-30b")


def anonymous_answers(store: Store) -> None:
    """Answer texts that do not name their model, so any model name in a reply is a leak."""
    with store.session() as s:
        s.execute(update(Generation).values(text="An answer, in neutral words."))


def votes_stored(store: Store) -> list[tuple[str, int, int]]:
    frame = read_judgments(store, judge="human")
    return list(zip(frame["judge"], frame["generation_1"], frame["generation_2"], strict=True))


def test_a_battle_is_voted_once_by_the_voter_it_was_issued_to_and_names_stay_hidden_until_then(
    store: Store,
) -> None:
    seed_arena(store, models=MODELS, prompts=3)
    anonymous_answers(store)
    with running_app(store, limits=GENEROUS) as url:
        ann, mallory = RawGradio(url), RawGradio(url)
        shown = ann.api("next_battle")
        assert shown.success and "neutral words" in shown.text()
        assert not any(model in shown.text() for model in MODELS)  # nothing names the models yet

        # someone else votes on ann's battle: same session hash, own cookie, forged state, spoofed id
        for data in ([None], [shown.data[0]], ["any-battle-id"]):
            attempt = mallory.call(ann.fn_index("vote_a"), data, session_hash=ann.session_hash)
            assert "no open battle of yours" in attempt.text()
            assert not any(model in attempt.text() for model in MODELS)
        spoofed = RawGradio(url, headers={"x-guanaco-voter": "0123456789abcdef"})
        assert "no open battle" in spoofed.call(ann.fn_index("vote_b"), [None], ann.session_hash).text()
        assert votes_stored(store) == []

        # ann votes: counted once, under the id the server gave her, and only now the names show
        voted = ann.api("vote_a")
        assert "Vote recorded" in voted.text() and any(model in voted.text() for model in MODELS)
        for api in VOTE_APIS:  # again, by every vote handler: nothing more is stored
            assert "no open battle" in ann.api(api).text()
        renamed = ann.api("vote_b", [None, "someone else"])  # the old name box is no input any more
        assert "Vote recorded" not in renamed.text()
        assert "no open battle" in ann.api("vote_a", session_hash="another-tab").text()
    stored = votes_stored(store)
    assert len(stored) == 1 and stored[0][0].startswith("human:anon-")


def test_two_tabs_with_one_pair_store_one_vote(store: Store) -> None:
    """One pair of answers exists; two tabs of one browser each get it (in either order) and vote."""
    seed_arena(store, models=MODELS[:2], prompts=1)
    with running_app(store, limits=GENEROUS) as url:
        browser = RawGradio(url)
        first, second = (
            browser.api("next_battle", session_hash="tab-1"),
            browser.api("next_battle", session_hash="tab-2"),
        )
        assert first.success and second.success and first.data[0] is None  # the battle id stays on the server
        assert "Vote recorded" in browser.api("vote_a", session_hash="tab-1").text()
        assert "already voted on these two answers" in browser.api("vote_b", session_hash="tab-2").text()
        other = RawGradio(url)  # another browser is another annotator
        other.api("next_battle")
        assert "Vote recorded" in other.api("vote_tie").text()
    stored = votes_stored(store)
    assert len(stored) == 2 and len({judge for judge, *_ in stored}) == 2


def test_explore_is_off_unless_the_operator_turns_it_on(store: Store) -> None:
    g = seed_arena(store, models=MODELS, prompts=2)
    with running_app(store, limits=GENEROUS) as url:
        config = RawGradio(url).config
    labels = {c.get("props", {}).get("label") for c in config["components"]}
    assert "Explore" not in str(labels) and "Judgment id" not in labels
    assert len(config["dependencies"]) == 13  # next, 4 votes, 6 leaderboard triggers, 2 loads
    with running_app(store, limits=GENEROUS, explore=True) as url:
        assert len(RawGradio(url).config["dependencies"]) > 13
    assert g  # seeded


def test_every_handler_is_rate_limited_per_session_and_per_ip(store: Store) -> None:
    """Each dependency, called by `fn_index` as the page would (default inputs): a second call from
    one session is refused, and so is a third from fresh sessions of one address."""
    seed_arena(store, models=MODELS, prompts=2)
    per_session = RateLimits(handlers=tuple((k, 1, 1000) for k, *_ in RateLimits().handlers),
                             new_voters_per_ip=1000)  # fmt: skip
    with running_app(store, limits=per_session, explore=True) as url:
        dependencies = RawGradio(url).dependencies()
        kinds_seen = set()
        for dep in dependencies:
            client = RawGradio(url)
            defaults = {c["id"]: c.get("props", {}).get("value") for c in client.config["components"]}
            data = [defaults.get(i) for i in dep["inputs"]]
            selected = {"index": [0, 0], "value": 1, "row_value": [1], "selected": True}
            event = selected if dep["targets"][0][1] == "select" else None
            client.call(dep["id"], data, event_data=event)
            again = client.call(dep["id"], data, event_data=event)
            assert not again.success and "Too many requests" in again.text(), (dep["id"], again)
            kinds_seen.add(dep["id"])
        assert len(kinds_seen) == len(dependencies) > 13
    per_ip = RateLimits(
        handlers=tuple((k, 1000, 2) for k, *_ in RateLimits().handlers), new_voters_per_ip=1000
    )
    with running_app(store, limits=per_ip) as url:
        results = [RawGradio(url).api("next_battle") for _ in range(3)]
    assert [r.success for r in results] == [True, True, False] and "Too many requests" in results[2].text()


def test_new_anonymous_ids_are_limited_per_address(store: Store) -> None:
    seed_arena(store, models=MODELS, prompts=2)
    with running_app(store, limits=RateLimits(new_voters_per_ip=2)) as url:
        results = [RawGradio(url).api("next_battle") for _ in range(3)]
    assert [r.success for r in results] == [True, True, False] and "No voter id" in results[2].text()


def test_foreign_hosts_and_origins_get_nothing_and_no_credentialed_cors(store: Store) -> None:
    seed_arena(store, models=MODELS, prompts=1)
    with running_app(store, limits=GENEROUS, allowed_hosts=("arena.example.org",)) as url:
        join = url + "gradio_api/queue/join"
        assert httpx.get(url, headers={"Host": "arena.example.org"}).status_code == 200  # a name people type
        body = {"data": [], "fn_index": 0, "session_hash": "x", "event_data": None, "trigger_id": None}
        assert httpx.get(url, headers={"Host": "evil.example"}).status_code == 421
        for origin in ("http://evil.example", "null", "http://127.0.0.1.evil.example"):
            posted = httpx.post(join, json=body, headers={"Origin": origin})
            preflight = httpx.options(
                join, headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
            )
            for reply in (posted, preflight):
                assert reply.status_code >= 400, (origin, reply)
                assert "access-control-allow-origin" not in reply.headers
                assert "access-control-allow-credentials" not in reply.headers
        for own_origin in (url.rstrip("/"), "https://arena.example.org"):
            own = httpx.post(join, json=body, headers={"Origin": own_origin})
            assert own.status_code == 200 and "access-control-allow-origin" not in own.headers
    assert votes_stored(store) == []


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        (["--host", "0.0.0.0"], "give --auth-file"),
        (["--host", "192.0.2.1"], "or --anonymous"),
        (["--host", "0.0.0.0", "--anonymous"], "--allowed-host"),
    ],
)
def test_serving_beyond_loopback_needs_logins_or_an_explicit_anonymous(
    flags: list[str], reason: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["app", "--db", f"sqlite:///{tmp_path / 'a.db'}", *flags]) == 2
    assert reason in capsys.readouterr().err


def test_startup_prints_no_database_password(capsys: pytest.CaptureFixture) -> None:
    url = "postgresql+psycopg://arena:s3cret-pw@127.0.0.1:1/arena"
    assert main(["app", "--db", url, "--port", "1"]) == 2
    said = capsys.readouterr()
    assert "s3cret-pw" not in said.out + said.err
    assert "postgresql+psycopg://arena:***@127.0.0.1:1/arena" in said.out


def test_users_add_writes_scrypt_hashes_and_clear_passwords_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    users = tmp_path / "users.txt"
    for name, password in (("ann", "correct horse"), ("bob", "battery staple"), ("ann", "new password")):
        monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
        assert main(["users", "add", name, "--auth-file", str(users), "--password-stdin"]) == 0
    text = users.read_text()
    assert "horse" not in text and "staple" not in text and "new password" not in text
    assert users.stat().st_mode & 0o077 == 0
    stored = read_auth_file(users)
    assert set(stored) == {"ann", "bob"} and all(h.startswith("scrypt$") for h in stored.values())
    clear = tmp_path / "clear.txt"
    clear.write_text("# old style\nann:secret\n")
    assert main(["app", "--db", f"sqlite:///{tmp_path / 'a.db'}", "--auth-file", str(clear)]) == 2
    assert f"{clear}, line 2: the password of 'ann' is not a scrypt hash" in capsys.readouterr().err
    with pytest.raises(ValueError, match="at least 8"):
        add_user(users, "carl", "short")


def test_logins_are_throttled_per_address_and_per_user(store: Store, tmp_path: Path) -> None:
    seed_arena(store, models=MODELS, prompts=1)
    users = tmp_path / "users.txt"
    add_user(users, "ann", "correct horse")
    limits = RateLimits(login_failures=3)
    with running_app(store, users=read_auth_file(users), limits=limits) as url:
        login = url + "login"
        ok = httpx.post(login, data={"username": "ann", "password": "correct horse"})
        assert ok.status_code == 200
        logged_in = RawGradio(url, load=False)
        logged_in.http.cookies.update(ok.cookies)
        logged_in.config = logged_in.http.get("/config").json()
        assert "Vote recorded" in (logged_in.api("next_battle"), logged_in.api("vote_a"))[1].text()
        codes = [
            httpx.post(login, data={"username": "ann", "password": f"guess{i}"}).status_code for i in range(4)
        ]
        assert codes == [400, 400, 400, 429]
        assert httpx.post(login, data={"username": "ann", "password": "correct horse"}).status_code == 429
    assert [judge for judge, *_ in votes_stored(store)] == ["human:ann"]

    async def attempts() -> list[bool]:
        check = Authenticator(read_auth_file(users), RateLimiter(), failures=2).check
        return [await check("ann", p) for p in ("correct horse", "x", "y", "correct horse")]

    assert asyncio.run(attempts()) == [True, False, False, False]  # the user name is locked for a while
