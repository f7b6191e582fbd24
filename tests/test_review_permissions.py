"""Who may see what in the review application, and how it trusts who is asking.

Table-driven checks of the permission rules (`Viewer`), then the rules as the application
enforces them, over a tiny hand-made warehouse: a health record, an education record and
two police records, served to a reviewer whose role leaves police out. Accounts, sessions,
CSRF and the reverse proxy's header are checked the same way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from linkage.cli import app as cli
from linkage.config import load_project
from linkage.errors import ConfigError
from linkage.review_app.accounts import (
    AccountError,
    add_reviewer,
    authenticate,
    disable_reviewer,
    hash_password,
    verify_password,
)
from linkage.review_app.app import create_app
from linkage.review_app.context import ReviewContext
from linkage.review_app.graph import layout
from linkage.review_app.permissions import Viewer, source_of
from linkage.review_app.sessions import LoginThrottle, SessionStore, same_token
from linkage.review_app.web import LOGIN_COOKIE, SESSION_COOKIE
from linkage.warehouse import open_warehouse
from tests.conftest import sample_project

CARE = frozenset({"education", "health", "socialwork"})
NEVER_SHARED = {"health": frozenset({"concern_type", "concern_status"})}
CARE_VIEWER = Viewer("cara", "care", CARE, NEVER_SHARED, frozenset({"chi", "scn"}))
ROLES = """
review:
  roles:
    all: [education, health, police, socialwork]
    care: [education, health, socialwork]
"""
PASSWORD = "correct horse battery"


# ---------------------------------------------------------------------------------------
# The rules
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record_key", "visible"),
    [
        ("health:H1", True),
        ("education:E:1", True),  # a record id may hold ':' itself
        ("police:P1", False),
        ("housing:T1", False),  # an agency the role does not name
        ("policeX:1", False),
    ],
)
def test_a_record_is_visible_only_to_roles_naming_its_agency(record_key: str, visible: bool):
    assert CARE_VIEWER.may_see_record(record_key) is visible


@pytest.mark.parametrize(
    ("pair", "visible"),
    [
        (("health:H1", "education:E1"), True),
        (("health:H1", "police:P1"), False),
        (("police:P1", "police:P2"), False),
    ],
)
def test_a_pair_is_visible_only_if_both_records_are(pair: tuple[str, str], visible: bool):
    assert CARE_VIEWER.may_see_pair(*pair) is visible


@pytest.mark.parametrize(
    ("source", "column", "shown"),
    [
        ("health", "surname", True),
        ("health", "concern_type", False),  # never shared: health's clinical detail
        ("health", "concern_status", False),
        ("socialwork", "concern_type", True),
        ("police", "surname", False),  # outside the role
    ],
)
def test_never_shared_columns_are_never_shown(source: str, column: str, shown: bool):
    assert CARE_VIEWER.shows(source, column) is shown


@pytest.mark.parametrize(
    ("stake", "shown"),
    [
        (None, None),
        ("open concern at health", "open concern at health"),
        ("open concerns at health, socialwork", "open concerns at health, socialwork"),
        ("open concerns at health, police", "open concern at health"),
        ("open concerns at police, socialwork", "open concern at socialwork"),
        ("open concern at police", "an open concern"),
    ],
)
def test_the_stake_names_only_visible_agencies(stake: str | None, shown: str | None):
    assert CARE_VIEWER.visible_stake(stake) == shown


@pytest.mark.parametrize(
    ("reason", "shown"),
    [
        ("possible twins", "possible twins"),
        ("refused: different chi", "refused: different chi"),
        ("refused: different pnc_id", "refused: conflicting identifiers"),
        ("refused: possible twins", "refused: possible twins"),
    ],
)
def test_a_reason_never_names_an_identifier_only_hidden_agencies_hold(reason: str, shown: str):
    assert CARE_VIEWER.visible_reason(reason) == shown


@pytest.mark.parametrize(
    ("record_key", "column", "shown"),
    [
        ("health:H1", "surname", True),
        ("health:H1", "chi", True),
        ("health:H1", "concern_type", False),
        ("police:P1", "surname", False),
    ],
)
def test_a_change_since_a_decision_is_shown_like_the_value(record_key, column, shown):
    assert CARE_VIEWER.may_see_change(record_key, column) is shown


def test_the_source_of_a_record_key_is_before_its_first_colon():
    assert source_of("education:E:1") == "education"


# ---------------------------------------------------------------------------------------
# Roles in the project config
# ---------------------------------------------------------------------------------------


def test_without_roles_one_role_sees_every_agency(tmp_path: Path):
    project = load_project(sample_project(tmp_path))
    assert project.review_roles() == {
        "all": frozenset({"education", "health", "police", "socialwork"})
    }


def test_roles_and_what_they_see_come_from_the_config(tmp_path: Path):
    config = sample_project(tmp_path)
    config.write_text(config.read_text() + ROLES)
    context = ReviewContext.load(load_project(config))
    assert context.roles["care"] == CARE
    assert context.never_shared["health"] >= {"concern_type", "concern_closed"}
    reviewer = _reviewer("cara", "care")
    viewer = context.viewer(reviewer)
    assert viewer is not None and viewer.agencies == CARE
    assert "pnc_id" not in viewer.identifier_types and "chi" in viewer.identifier_types
    assert context.viewer(_reviewer("old", "gone")) is None, "a role since removed sees nothing"


@pytest.mark.parametrize(
    ("review", "message"),
    [
        ("review: {roles: {care: [health, housing]}}", "review.roles.care: unknown agencies"),
        ("review: {roles: {care: []}}", "name at least one agency"),
        ("review: {roles: {Care: [health]}}", "a role is lower case"),
        ("review: {proxy_user_header: 'X User'}", "proxy_user_header"),
        ("review: {trusted_proxies: [proxy.example]}", "not an IP address"),
        ("review: {session_idle_minutes: 0}", "session_idle_minutes"),
        ("review: {rolez: {}}", "rolez"),
    ],
)
def test_a_bad_review_section_is_a_clear_error(tmp_path: Path, review: str, message: str):
    config = sample_project(tmp_path)
    config.write_text(config.read_text() + review + "\n")
    with pytest.raises(ConfigError, match=re.escape(message)) as raised:
        load_project(config).review_roles()
    assert str(config.name) in str(raised.value)


# ---------------------------------------------------------------------------------------
# Accounts, sessions, sign-in brake
# ---------------------------------------------------------------------------------------


def test_passwords_are_stored_as_salted_scrypt_hashes():
    stored = hash_password(PASSWORD)
    assert stored.startswith("scrypt$") and PASSWORD not in stored
    assert hash_password(PASSWORD) != stored, "a fresh salt each time"
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD + "!", stored)
    assert not verify_password(PASSWORD, None) and not verify_password(PASSWORD, "plain")


def test_accounts_are_checked_on_the_way_in(tmp_path: Path):
    with open_warehouse(tmp_path / "w.duckdb") as con:
        roles = {"all", "care"}
        add_reviewer(con, "cara", "care", PASSWORD, roles)
        add_reviewer(con, "pat", "all", None, roles)  # proxy only
        for name, role, password, message in [
            ("cara", "care", PASSWORD, "exists"),
            ("bad name", "care", PASSWORD, "reviewer name"),
            ("dan", "police_only", PASSWORD, "unknown role"),
            ("dan", "care", "short", "at least 10"),
        ]:
            with pytest.raises(AccountError, match=message):
                add_reviewer(con, name, role, password, roles)
        assert authenticate(con, "cara", PASSWORD) is not None
        assert authenticate(con, "cara", "wrong password") is None
        assert authenticate(con, "nobody", PASSWORD) is None
        assert authenticate(con, "pat", "") is None, "a proxy-only account has no password"
        disable_reviewer(con, "cara")
        assert authenticate(con, "cara", PASSWORD) is None
        stored = con.execute("SELECT password_hash FROM reviewer WHERE name = 'cara'").fetchall()
        assert PASSWORD not in stored[0][0]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sessions_expire_when_idle_and_after_their_lifetime():
    clock = Clock()
    store = SessionStore(idle=60, lifetime=300, clock=clock)
    session = store.start("cara")
    clock.now += 59
    assert store.get(session.token) is session
    clock.now += 61
    assert store.get(session.token) is None, "idle too long"
    busy = store.start("cara")
    for _ in range(6):
        clock.now += 55
        seen = store.get(busy.token)
    assert seen is None, "over its lifetime however active"
    other = store.start("cara")
    store.end(other.token)
    assert store.get(other.token) is None
    assert store.get(None) is None and store.get("forged") is None


def test_csrf_tokens_compare_exactly():
    assert same_token("abc", "abc")
    assert not same_token("abc", "abd") and not same_token("abc", None) and not same_token("", "")


def test_repeated_failed_sign_ins_are_refused_for_a_while():
    clock = Clock()
    throttle = LoginThrottle(attempts=3, window=60, clock=clock)
    for _ in range(3):
        assert not throttle.blocked("name:cara")
        throttle.failed("name:cara", "client:1.2.3.4")
    assert throttle.blocked("name:cara") and throttle.blocked("client:1.2.3.4")
    assert not throttle.blocked("name:pat")
    clock.now += 61
    assert not throttle.blocked("name:cara")


def test_the_graph_puts_the_pair_opposite_and_draws_only_its_records():
    records = [(f"health:{n}", "P1", "health", str(n)) for n in range(6)]
    edges = [("health:0", "health:3", 0.99, True), ("health:0", "police:9", 0.99, True)]
    graph = layout(records, edges, ("health:0", "health:3"), ["health", "police"])
    at = {node.record_key: node for node in graph.nodes}
    assert at["health:0"].in_pair and at["health:3"].in_pair
    assert at["health:0"].x == pytest.approx(360 - at["health:3"].x, abs=0.2), "opposite"
    assert [(link.key_l, link.key_r) for link in graph.links] == [("health:0", "health:3")]
    assert graph.links[0].in_pair and graph.left_out == 0


def _reviewer(name: str, role: str):  # noqa: ANN202
    from datetime import datetime

    from linkage.review_app.accounts import Reviewer

    return Reviewer(name, role, True, datetime(2026, 1, 1), None)


# ---------------------------------------------------------------------------------------
# The application enforces them: a tiny warehouse, served without a browser
# ---------------------------------------------------------------------------------------

RECORDS = [
    # record_key, source, id, forename, surname, born, chi, pnc_id, concern_type, person
    ("health:H1", "health", "H1", "ANNA", "SMITH", "2010-01-02", "0201101234", None,
     "HEALTH_CHILD_PROTECTION", "P0000000001"),
    ("education:E1", "education", "E1", "ANNA", "SMYTH", "2010-01-02", None, None, None,
     "P0000000002"),
    ("police:PX7", "police", "PX7", "ANNA", "SMITH", "2010-01-02", None, "PNCQ", None,
     "P0000000001"),
    ("police:PX8", "police", "PX8", "ROBERTA", "SMITH", "2010-01-02", None, "PNCZ", None,
     "P0000000003"),
]  # fmt: skip
REVIEW_ITEMS = [
    ("education:E1", "health:H1", "P0000000002", "P0000000001", 0.8, "doubtful link", 2,
     "open concern at health"),
    ("health:H1", "police:PX8", "P0000000001", "P0000000003", 0.7, "possible twins", 1,
     "open concerns at health, police"),
    ("police:PX7", "police:PX8", "P0000000001", "P0000000003", 0.6, "refused: different pnc_id",
     1, "open concerns at health, police"),
]  # fmt: skip
HIDDEN = ["police", "PX7", "PX8", "PNCQ", "HEALTH_CHILD_PROTECTION", "ROBERTA"]


@dataclass
class Tiny:
    project_config: Path
    warehouse: Path
    context: ReviewContext


@pytest.fixture()
def tiny(tmp_path: Path) -> Tiny:
    config = sample_project(tmp_path, "tiny")
    config.write_text(
        config.read_text()
        + ROLES
        + "  proxy_user_header: X-Remote-User\n  trusted_proxies: [127.0.0.1]\n"
    )
    project = load_project(config)
    with open_warehouse(project.warehouse, project.identifier_registry()) as con:
        for key, source, rid, forename, surname, born, chi, pnc, concern, person in RECORDS:
            con.execute(
                "INSERT INTO canonical_record (record_key, source, source_record_id, forename,"
                " surname, date_of_birth, chi, pnc_id, concern_type, concern_status)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [key, source, rid, forename, surname, born, chi, pnc, concern,
                 "open" if concern else None],
            )  # fmt: skip
            con.execute(
                "INSERT INTO linked_index VALUES (?, ?, ?, ?, NULL, 'run1')",
                [person, key, source, rid],
            )
        for key_l, key_r, person_l, person_r, p, reason, priority, stake in REVIEW_ITEMS:
            con.execute(
                "INSERT INTO link_review VALUES (?, ?, ?, ?, ?, ?, 'run1', ?, ?, true, false)",
                [key_l, key_r, person_l, person_r, p, reason, priority, stake],
            )
        con.execute(
            "INSERT INTO person_id_history VALUES ('run1', DATE '2026-11-01', 'P0000000003',"
            " 'created', NULL, 1, 'new person')"
        )
        roles = project.review_roles().keys()
        add_reviewer(con, "cara", "care", PASSWORD, roles)
        add_reviewer(con, "ana", "all", PASSWORD, roles)
        add_reviewer(con, "pat", "care", None, roles)
    return Tiny(config, project.warehouse, ReviewContext.load(project))


def signed_in(tiny: Tiny, name: str = "cara") -> TestClient:
    client = TestClient(create_app(tiny.context), follow_redirects=False)
    form = client.get("/login")
    token = form.cookies[LOGIN_COOKIE]
    answer = client.post(
        "/login", data={"name": name, "password": PASSWORD, "csrf": token, "next": "/queue"}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/queue"
    return client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found[1]


def test_pages_need_a_signed_in_reviewer(tiny: Tiny):
    client = TestClient(create_app(tiny.context), follow_redirects=False)
    for path in ["/queue", "/pair?l=education:E1&r=health:H1", "/person/P0000000001", "/search"]:
        answer = client.get(path)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=")
    assert client.get("/healthz").text == "ok"


def test_sign_in_checks_password_form_token_and_where_it_leads(tiny: Tiny):
    client = TestClient(create_app(tiny.context), follow_redirects=False)
    token = client.get("/login").cookies[LOGIN_COOKIE]
    wrong = client.post("/login", data={"name": "cara", "password": "nope", "csrf": token})
    assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
    forged = client.post("/login", data={"name": "cara", "password": PASSWORD, "csrf": "x"})
    assert forged.status_code == 400 and SESSION_COOKIE not in forged.cookies
    away = client.post(
        "/login",
        data={"name": "cara", "password": PASSWORD, "csrf": token, "next": "//evil.example/"},
    )
    assert away.status_code == 303 and away.headers["location"] == "/queue"
    assert client.get("/queue").status_code == 200


def test_every_page_forbids_framing_caching_and_anything_from_elsewhere(tiny: Tiny):
    client = signed_in(tiny)
    answer = client.get("/queue")
    policy = answer.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "unsafe-inline" not in policy
    nonce = re.search(r"'nonce-([^']+)'", policy)
    assert nonce is not None and f'nonce="{nonce[1]}"' in answer.text
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", answer.text)


def test_a_role_without_police_sees_no_police_record_anywhere(tiny: Tiny):
    client = signed_in(tiny, "cara")
    pages = {
        "queue": client.get("/queue"),
        "pair": client.get("/pair?l=education:E1&r=health:H1"),
        "person with police records": client.get("/person/P0000000001"),
        "search": client.get("/search?q=PX7"),
        "not sure": client.get("/queue?status=unsure"),
    }
    for name, answer in pages.items():
        assert answer.status_code == 200, name
        text = answer.text.lower().replace("“px7”", "").replace('value="px7"', "")  # the query
        for hidden in HIDDEN:  # as a word: a random token may hold its letters (…okpx8zq…)
            shown = re.search(rf"(?<![a-z0-9]){re.escape(hidden.lower())}(?![a-z0-9])", text)
            assert shown is None, f"{hidden} on the {name} page"
    assert "education:E1" in pages["queue"].text and "open concern at health" in pages["queue"].text
    assert "SMYTH" in pages["pair"].text and "H1" in pages["person with police records"].text
    assert "No record you may see" in pages["search"].text and "<table" not in pages["search"].text
    # a hidden record answers as a record that does not exist
    nowhere = client.get("/pair?l=health:H1&r=health:NOPE")
    for path in ["/pair?l=health:H1&r=police:PX8", "/person/P0000000003"]:
        answer = client.get(path)
        assert answer.status_code == 404 and "police" not in answer.text.lower()
    assert nowhere.status_code == 404


def test_a_role_with_police_sees_them(tiny: Tiny):
    client = signed_in(tiny, "ana")
    queue = client.get("/queue").text
    assert "police:PX8" in queue and "refused: different pnc_id" in queue
    assert "HEALTH_CHILD_PROTECTION" not in client.get("/person/P0000000001").text, "never shared"


def test_only_a_decision_form_with_its_token_and_the_evidence_shown_writes(tiny: Tiny):
    client = signed_in(tiny, "cara")
    page = client.get("/pair?l=health:H1&r=education:E1").text
    evidence = re.search(r'name="evidence" value="([0-9a-f]{64})"', page)
    assert evidence is not None
    form = {"l": "education:E1", "r": "health:H1", "decision": "non-match", "note": "twins"}
    assert client.post("/decide", data=form | {"evidence": evidence[1]}).status_code == 403
    stale = client.post("/decide", data=form | {"csrf": csrf_of(page), "evidence": "0" * 64})
    assert stale.status_code == 409 and "nothing was recorded" in stale.text
    hidden = form | {"r": "police:PX8", "csrf": csrf_of(page), "evidence": evidence[1]}
    assert client.post("/decide", data=hidden).status_code == 404
    assert _decisions(tiny) == []
    done = client.post("/decide", data=form | {"csrf": csrf_of(page), "evidence": evidence[1]})
    assert done.status_code == 303
    (decision,) = _decisions(tiny)
    assert decision[:5] == ("education:E1", "health:H1", "non-match", "twins", "cara")
    shown = json.loads(decision[5])
    assert shown["pair"] == ["education:E1", "health:H1"] and decision[6] == evidence[1]
    assert "police" not in decision[5].lower(), "what was shown is what the role could see"


def test_the_proxy_header_is_believed_only_from_a_trusted_proxy(tiny: Tiny):
    app = create_app(tiny.context)
    header = {"X-Remote-User": "pat"}
    trusted = TestClient(app, follow_redirects=False, client=("127.0.0.1", 50000))
    answer = trusted.get("/queue", headers=header)
    assert answer.status_code == 200 and "signed in by the proxy" in answer.text
    assert trusted.get("/queue", headers={"X-Remote-User": "stranger"}).status_code == 303
    elsewhere = TestClient(app, follow_redirects=False, client=("10.1.2.3", 50000))
    assert elsewhere.get("/queue", headers=header).status_code == 303


def test_a_disabled_reviewer_is_signed_out_at_their_next_request(tiny: Tiny):
    client = signed_in(tiny, "cara")
    with open_warehouse(tiny.warehouse) as con:
        disable_reviewer(con, "cara")
    assert client.get("/queue").status_code == 303


def test_sign_out_ends_the_session(tiny: Tiny):
    client = signed_in(tiny, "cara")
    page, token = client.get("/queue").text, client.cookies[SESSION_COOKIE]
    assert client.post("/logout", data={"csrf": csrf_of(page)}).status_code == 303
    client.cookies.set(SESSION_COOKIE, token)  # the old cookie, kept by a copy somewhere
    assert client.get("/queue").status_code == 303


def test_reviewers_are_added_listed_and_disabled_from_the_command_line(tiny: Tiny):
    runner = CliRunner()
    config = str(tiny.project_config)
    added = runner.invoke(
        cli,
        ["reviewer", "add", "-c", config, "dora", "--role", "care", "--password-stdin"],
        input=PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.output
    again = runner.invoke(
        cli, ["reviewer", "add", "-c", config, "dora", "--role", "care", "--proxy-only"]
    )
    assert again.exit_code == 2 and "--replace" in again.output
    unknown = runner.invoke(
        cli, ["reviewer", "add", "-c", config, "eve", "--role", "root", "--proxy-only"]
    )
    assert unknown.exit_code == 2 and "unknown role" in unknown.output
    assert runner.invoke(cli, ["reviewer", "disable", "-c", config, "dora"]).exit_code == 0
    listed = runner.invoke(cli, ["reviewer", "list", "-c", config])
    assert "dora: care (education, health, socialwork); password, disabled" in listed.output
    assert "pat: care (education, health, socialwork); proxy only" in listed.output


def _decisions(tiny: Tiny) -> list[tuple]:
    with duckdb.connect(str(tiny.warehouse), read_only=True) as con:
        return con.execute(
            "SELECT record_key_l, record_key_r, decision, note, decided_by, evidence,"
            " evidence_sha256 FROM review_decision ORDER BY ALL"
        ).fetchall()


def decide(client: TestClient, key_l: str, key_r: str, decision: str, note: str = "") -> None:
    page = client.get(f"/pair?l={key_l}&r={key_r}").text
    evidence = re.search(r'name="evidence" value="([0-9a-f]{64})"', page)
    assert evidence is not None
    form = {"l": key_l, "r": key_r, "decision": decision, "note": note}
    answer = client.post("/decide", data=form | {"csrf": csrf_of(page), "evidence": evidence[1]})
    assert answer.status_code == 303, answer.text


def test_the_queue_filters_lists_not_sure_and_re_queues_changed_decisions(tiny: Tiny):
    client = signed_in(tiny, "cara")
    assert "education:E1" in client.get("/queue?reason=doubtful+link").text
    assert "Nothing to review here" in client.get("/queue?reason=possible+twins").text
    assert "education:E1" in client.get("/queue?agency=education").text
    assert "Nothing to review here" in client.get("/queue?agency=socialwork").text

    decide(client, "education:E1", "health:H1", "unsure", "ask the school")
    assert "Nothing to review here" in client.get("/queue").text
    unsure = client.get("/queue?status=unsure").text
    assert "education:E1" in unsure and "not sure: cara" in unsure and "ask the school" in unsure

    decide(client, "education:E1", "health:H1", "match", "same girl")
    assert "Nothing to review here" in client.get("/queue?status=unsure").text
    with open_warehouse(tiny.warehouse) as con:  # as a night's publish does
        con.execute(
            "UPDATE canonical_record SET surname = 'SMYTHE' WHERE record_key = 'education:E1'"
        )
        con.execute(
            "INSERT INTO source_night (run_id, source, status) VALUES ('run2', 'education', 'used')"
        )
    queue = client.get("/queue").text
    assert "changed since decided: same person by cara" in queue
    assert "surname: SMYTH → SMYTHE" in queue
    item = client.get("/queue/at?pos=0", follow_redirects=True).text
    assert 'id="changes"' in item and "SMYTHE" in item and "police" not in item.lower()
    decide(client, "education:E1", "health:H1", "match", "still the same girl")
    assert "Nothing to review here" in client.get("/queue").text, "confirmed: off the queue"
