"""The dashboard page, rendered by a real browser (headless Chromium).

The page telemetry_dashboard_html writes is loaded from a file by Chromium, which dumps
the DOM it built and takes a screenshot. The DOM must hold the four SVG charts with bars
whose values equal plain SQL over the raw rows; hostile text logged by users (error
messages, alert figures, even a generator name an administrator chose) must come out as
text, never as an element or attribute; and the page must load nothing from anywhere.
"""

import datetime as dt
import html.parser
import re
import shutil
import struct
import subprocess
import zlib
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
from psycopg.types.json import Jsonb

from conftest import REPO, as_role, make_user, raises_pg_error, scalar

UTC = dt.timezone.utc
NOW = dt.datetime.now(UTC)
SINCE = (NOW - dt.timedelta(days=6)).replace(hour=0, minute=0, second=0, microsecond=0)
UNTIL = NOW

HOSTILE_MESSAGE = """<script>document.title='pwned'</script><img src=x onerror="alert(1)"> & "quotes" 'too'"""
HOSTILE_GENERATOR = "<svg/onload=alert(2)>"
HOSTILE_FIGURES = {"note": "</td></tr></table><script>alert(3)</script>", "daily_cost": 12.5}
CHARTS = {"cost-per-bucket", "generations-per-bucket", "success-rate", "latency"}

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# --------------------------------------------------------------------------
# A browser and a DOM reader
# --------------------------------------------------------------------------

def chromium(tmp_path, page, *args):
    """Run headless Chromium on a page file; its stdout."""
    binary = shutil.which("chromium")
    assert binary, "chromium is not installed (scripts/setup installs Debian's chromium)"
    cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}", *args, page.as_uri()]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"chromium failed:\n{result.stderr[-3000:]}"
    return result.stdout


class Dom(html.parser.HTMLParser):
    """Elements (tag, attributes) and text of an HTML document, as a browser serialized it."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.elements = []
        self.text = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag, **attrs):
        return [a for t, a in self.elements if t == tag and all(a.get(k) == v for k, v in attrs.items())]

    @property
    def all_text(self):
        return "".join(self.text)


def write_page(tmp_path, text, name="dashboard.html"):
    page = tmp_path / name
    page.write_text(text, encoding="utf-8")
    return page


def bars(dom, chart):
    """(data-series, data-value, bucket) of the bars of one chart, in document order."""
    out = []
    current_chart = bucket = None
    for tag, attrs in dom.elements:
        if tag == "svg":
            current_chart, bucket = attrs.get("data-chart"), None
        elif tag == "g" and "data-bucket" in attrs:
            bucket = attrs["data-bucket"]
        elif tag == "rect" and "bar" in attrs.get("class", "").split() and current_chart == chart:
            out.append((attrs.get("data-series"), attrs.get("data-value"), bucket))
    return out


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def people(db):
    """Alice (hostile error messages, a hostile generator) and Bob, with calls over the last
    week and before it, and an alert each."""
    with db.connect() as conn:
        conn.execute("insert into aurora_telemetry.generators (name, description) values (%s, 'x')",
                     [HOSTILE_GENERATOR])
        conn.execute("""insert into aurora_telemetry.prices (generator, effective_from, per_generation)
                        values (%s, '-infinity', 0.0125)""", [HOSTILE_GENERATOR])
        alice, bob = make_user(conn), make_user(conn)
        rows = []
        for i in range(240):
            created = NOW - dt.timedelta(minutes=53 * i + 7)  # about 9 days back
            generator = ("Claude", "Imagen-3", "Midjourney", HOSTILE_GENERATOR)[i % 4]
            success = i % 5 != 0
            rows.append((alice, generator, 300 + (i * 97) % 5000, success,
                         None if success else HOSTILE_MESSAGE, created))
            if i % 3 == 0:
                rows.append((bob, "Claude", 2000 + i, i % 2 == 0, None if i % 2 == 0 else "bob-secret-error",
                             created))
        with as_role(conn, "service_role") as cur:
            cur.executemany(
                """insert into public.generation_logs (user_id, generator, time_ms, success, error_message, created_at)
                   values (%s, %s, %s, %s, %s, %s)""", rows)
        for user, figures in ((alice, HOSTILE_FIGURES), (bob, {"note": "bob-secret-alert"})):
            conn.execute(
                """insert into aurora_telemetry.alerts (kind, scope, user_id, period, window_start, figures, payload, sent_at)
                   values ('cost_alert', 'user', %s, 'day', date_trunc('day', now() - interval '1 day'), %s, '{}',
                           now() - interval '1 day')""", [user, Jsonb(figures)])
    return alice, bob


def page_as(conn, user, **args):
    args = {"since": SINCE, "until": UNTIL, **args}
    names = ", ".join(f"{k} => %({k})s" for k in args)
    with as_role(conn, "authenticated", sub=user) as cur:
        return scalar(cur, f"select public.telemetry_dashboard_html({names})", args)


def admin_page(conn, **args):
    args = {"since": SINCE, "until": UNTIL, "user_id": None, **args}
    names = ", ".join(f"{k} => %({k})s" for k in args)
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        cur.execute("set local role aurora_telemetry_admin")
        return scalar(cur, f"select public.telemetry_dashboard_html({names})", args)


@pytest.fixture(scope="module")
def alices_dom(people, db, tmp_path_factory):
    alice, _ = people
    tmp_path = tmp_path_factory.mktemp("dashboard")
    with db.connect() as conn:
        text = page_as(conn, alice)
    dumped = chromium(tmp_path, write_page(tmp_path, text), "--dump-dom")
    return text, Dom(dumped)


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------

def test_the_browser_renders_all_four_charts(alices_dom):
    _, dom = alices_dom
    charts = {svg.get("data-chart") for svg in dom.all("svg")}
    assert CHARTS <= charts
    for chart in CHARTS:
        assert bars(dom, chart), f"chart {chart} has no bars"
    # one column per day of the range, empty days included
    assert len([a for a in dom.all("g") if "data-bucket" in a]) == 2 * 7


def test_hostile_text_is_shown_as_text_never_as_markup(alices_dom):
    raw, dom = alices_dom
    assert dom.all("script") == []
    assert dom.all("img") == []
    assert [tag for tag, attrs in dom.elements if any(name.startswith("on") for name in attrs)] == []
    text = dom.all_text
    assert HOSTILE_MESSAGE in text
    assert HOSTILE_GENERATOR in text
    assert HOSTILE_FIGURES["note"] in text
    # the browser's title is the page's own
    assert dom.all("title") and "pwned" not in raw.split("</title>")[0]
    assert "<script" not in raw.lower()


def test_the_page_loads_nothing_from_anywhere(alices_dom):
    raw, dom = alices_dom
    csp = dom.all("meta", **{"http-equiv": "Content-Security-Policy"})
    assert csp and csp[0]["content"].startswith("default-src 'none'")
    for tag, attrs in dom.elements:
        for name in ("src", "href", "srcset", "action", "data", "poster"):
            assert name not in attrs, (tag, attrs)
    assert "url(" not in raw and "@import" not in raw
    # the only URL is the SVG namespace name, which is never fetched
    assert set(re.findall(r"https?://[^\"' <>]*", raw)) == {"http://www.w3.org/2000/svg"}


def test_chart_values_equal_plain_sql(conn, people, alices_dom):
    alice, _ = people
    _, dom = alices_dom
    day_label = "to_char(created_at at time zone 'UTC', 'YYYY-MM-DD')"
    in_range = "user_id = %(u)s and created_at >= %(s)s and created_at < %(e)s"
    params = {"u": alice, "s": SINCE, "e": UNTIL}
    counts = conn.execute(f"select {day_label}, generator, count(*), sum(cost) from public.generation_logs "
                          f"where {in_range} group by 1, 2", params).fetchall()
    expected_counts = {(day, g): str(n) for day, g, n, _ in counts}
    expected_costs = {(day, g): cost for day, g, _, cost in counts}
    got_counts = {(bucket, series): value for series, value, bucket in bars(dom, "generations-per-bucket")}
    got_costs = {(bucket, series): Decimal(value.lstrip("$")) for series, value, bucket in bars(dom, "cost-per-bucket")}
    assert got_counts == expected_counts
    assert got_costs == expected_costs

    rates = conn.execute(f"""
        select generator, round(100.0 * count(*) filter (where success) / count(*), 2),
               count(*) filter (where success), count(*)
          from public.generation_logs where {in_range} group by generator""", params).fetchall()
    got_rates = {series: value for series, value, _ in bars(dom, "success-rate")}
    assert got_rates == {g: f"{rate}% ({ok} of {n})" for g, rate, ok, n in rates}

    latency = conn.execute(f"""
        select generator, percentile_disc(0.5) within group (order by time_ms),
               percentile_disc(0.95) within group (order by time_ms)
          from public.generation_logs where {in_range} group by generator""", params).fetchall()
    shown = defaultdict(dict)
    for series, value, _ in bars(dom, "latency"):
        kind, number, unit = value.split()
        shown[series][kind] = Decimal(number)
    assert set(shown) == {g for g, _, _ in latency}
    for generator, p50, p95 in latency:
        for kind, exact in (("p50", p50), ("p95", p95)):
            # sketch within 1%, then rounded to whole milliseconds for display
            assert abs(shown[generator][kind] - exact) <= Decimal("0.01") * exact + Decimal("0.5")


def test_users_see_only_their_own_alerts_and_failures(conn, people, alices_dom):
    _, bob = people
    raw, dom = alices_dom
    assert "bob-secret" not in raw and str(bob) not in raw
    alerts_table = [a for a in dom.all("table") if a.get("id") == "latest-alerts"]
    assert alerts_table
    assert "cost_alert" in dom.all_text
    bobs = page_as(conn, bob)
    assert "bob-secret-alert" in bobs and "bob-secret-error" in bobs
    assert "pwned" not in bobs and HOSTILE_GENERATOR not in bobs


def test_the_screenshot_shows_a_rendered_page(tmp_path, alices_dom):
    raw, _ = alices_dom
    page = write_page(tmp_path, raw)
    shot = tmp_path / "dashboard.png"
    chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1000,1800", "--hide-scrollbars")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1000, 1800)
    # Not a blank page: the decompressed pixels take many different byte values.
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    pixels = zlib.decompress(idat)
    assert len(set(pixels)) > 64


def test_the_administrators_variant_shows_everyone_and_the_top_spenders(conn, people, tmp_path):
    alice, bob = people
    raw = admin_page(conn)
    dom = Dom(chromium(tmp_path, write_page(tmp_path, raw), "--dump-dom"))
    assert CHARTS <= {svg.get("data-chart") for svg in dom.all("svg")}
    assert "All users" in dom.all_text
    expected = conn.execute("""
        select user_id::text, sum(cost) from public.generation_logs
         where created_at >= %s and created_at < %s
         group by user_id order by sum(cost) desc, count(*) desc, user_id""", [SINCE, UNTIL]).fetchall()
    top = raw.split('id="top-spenders"')[1].split("</table>")[0]
    assert re.findall(r"<code>([0-9a-f-]{36})</code>", top) == [user for user, _ in expected]
    assert "bob-secret-alert" in raw and HOSTILE_FIGURES["note"] in dom.all_text
    total = sum(int(value) for _, value, _ in bars(dom, "generations-per-bucket"))
    assert total == scalar(conn, "select count(*) from public.generation_logs where created_at >= %s and created_at < %s",
                           [SINCE, UNTIL])


def test_a_jwt_administrator_gets_the_all_users_page(conn, people):
    alice, _ = people
    claims = {"sub": str(alice), "role": "authenticated", "app_metadata": {"aurora_telemetry_admin": True}}
    with as_role(conn, "authenticated", claims=claims) as cur:
        page = scalar(cur, "select public.telemetry_dashboard_html(%s, %s, null)", [SINCE, UNTIL])
    assert 'id="top-spenders"' in page and "bob-secret-error" in page


def test_who_may_see_which_dashboard(conn, people):
    alice, bob = people
    with raises_pg_error("42501", "only their own"), as_role(conn, "authenticated", sub=alice) as cur:
        cur.execute("select public.telemetry_dashboard_html(user_id => %s)", [bob])
    with raises_pg_error("42501", "administrators only"), as_role(conn, "authenticated", sub=alice) as cur:
        cur.execute("select public.telemetry_dashboard_html(user_id => null)")
    with raises_pg_error("42501"), as_role(conn, "anon") as cur:
        cur.execute("select public.telemetry_dashboard_html()")
    with as_role(conn, "service_role") as cur:
        assert "bob-secret-error" in scalar(cur, "select public.telemetry_dashboard_html(user_id => %s)", [bob])
    # the default range is the last 30 days, ending now
    with as_role(conn, "authenticated", sub=alice) as cur:
        page = scalar(cur, "select public.telemetry_dashboard_html()")
    assert page.count('<g class="column"') == 2 * 30


def test_bad_ranges_are_refused(conn, people):
    alice, _ = people
    with raises_pg_error("22023", "since must not be later than until"):
        page_as(conn, alice, since=UNTIL, until=SINCE)
    with raises_pg_error("22023", "finite"), as_role(conn, "authenticated", sub=alice) as cur:
        cur.execute("select public.telemetry_dashboard_html(since => '-infinity')")


def test_the_readme_shows_a_screenshot():
    readme = (REPO / "README.md").read_text()
    assert "docs/dashboard.png" in readme
    data = (REPO / "docs" / "dashboard.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 400_000
