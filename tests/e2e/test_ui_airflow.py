"""The Airflow UI as a new user meets it, in headless Chromium against `make up`'s stack.

One `tools/standalone.py` (what `make up` runs: scheduler, executor, api-server with
the UI and this project's plugin) on local storage, with its hourly run waiting
for uploads. It prints the login and where to drop files, and Ctrl-C (the last test)
leaves no process behind. Through the browser, as a user would:

* the trigger form is submitted with its defaults (every param valid as it is);
* the waiting hourly run yields to that manual run, which processes the uploads
  dropped after the trigger (a good clip and a "video" that is a text file);
* the Outputs link opens report.html over HTTP through the plugin, behind the login;
  the rejected video's link opens its page in the library instead;
* the failure's reason, by the user's file name, is a note on the task and the run,
  and the rejected video's tasks show its name (not a map index number) from the moment they
  are skipped, in the metadata database and in the UI;
* /video-pipeline/docs renders with the browser cut off from every host but this one;
* published files are readable (0644), as a web server expects;
* the Videos page: list, filter, search, a hit that seeks the player, reprocess, Russian labels
  (asked for, from Airflow's language setting, from the browser's language).

Chromium resolves no host but 127.0.0.1, so nothing can come from a CDN.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from tests.e2e.labels import LabelWatch
from tests.e2e.ui_browser import Browser
from tests.fixtures import clips
from tests.fixtures.env import user_environment
from tests.fixtures.models import faster_whisper_tiny_en
from tests.fixtures.net import free_port, wait_for
from tools import local_postgres
from tools import standalone as standalone_tool

ROOT = Path(__file__).resolve().parents[2]
GOOD = "budget review.mp4"
BAD = "bad upload.mp4"
# Three Whisper segments (0-4 s, 4-7 s, 7-10 s with tiny.en): the hit is in the last one.
SPEECH = (
    "Good morning everyone. First, the weather is cold today. Second, the office moves to a new building "
    "next month. Finally, the marketing budgets were approved yesterday."
)


def _health(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=3) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass
class Stack:
    base: str
    storage: Path
    airflow_dsn: str
    results_dsn: str
    token: str
    shots: Path
    standalone: subprocess.Popen[str]  # tools/standalone.py, in a process group of its own
    output: Path  # what it printed
    airflow_home: Path
    port: int

    def airflow(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg2.connect(self.airflow_dsn) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def results(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg2.connect(self.results_dsn) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def browser(self, token: str | None = None) -> Browser:
        browser = Browser()
        browser.set_cookie("_token", token or self.token, self.base)
        return browser


def _token(base: str, user: str, password: str) -> str:
    request = urllib.request.Request(
        f"{base}/auth/token",
        data=json.dumps({"username": user, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.load(response)["access_token"])


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("ui-stack")
    data_dir, home, port = tmp / "data", tmp / "airflow", free_port()
    storage = data_dir / "storage"
    # The stack is `make up` as a user starts it: settings that other tests in this worker put in
    # os.environ (the API tests' auth manager, a results-DB connection) stay out.
    env = {
        **user_environment(),
        "VIDEO_PIPELINE_WHISPER_MODEL": str(faster_whisper_tiny_en()),
        "HF_HUB_OFFLINE": "1",
        "VIDEO_PIPELINE_DATA_DIR": str(data_dir),
        "VIDEO_PIPELINE_LOCAL_ROOT": str(storage),
        "AIRFLOW_HOME": str(home),
        "VIDEO_PIPELINE_UI_PORT": str(port),
        "VIDEO_PIPELINE_ANALYZER": "offline",
        "VIDEO_PIPELINE_WORK_DIR": str(tmp / "work"),
        # The hourly run looks again every 10 s, so its yield comes soon after the trigger.
        "VIDEO_PIPELINE_SENSOR_POKE_SECONDS": "10",
    }
    output = open(tmp / "standalone.out", "w")
    standalone = subprocess.Popen(
        [sys.executable, str(ROOT / "tools" / "standalone.py")],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        pg = wait_for(lambda: local_postgres.running(data_dir / "postgres"), 120, "PostgreSQL")
        wait_for(lambda: _health(port), 600, "the Airflow api-server", interval=3)
        passwords_file = standalone_tool.passwords_file(env)
        passwords = wait_for(lambda: passwords_file.is_file() and json.loads(passwords_file.read_text()), 60, "logins")
        base = f"http://127.0.0.1:{port}"
        shots = Path(os.environ.get("VIDEO_PIPELINE_SCREENSHOT_DIR") or tmp / "screenshots")
        yield Stack(
            base=base,
            storage=storage,
            airflow_dsn=pg.dsn("airflow"),
            results_dsn=pg.dsn("video_pipeline"),
            token=_token(base, "admin", passwords["admin"]),
            shots=shots,
            standalone=standalone,
            output=tmp / "standalone.out",
            airflow_home=home,
            port=port,
        )
    finally:
        if standalone.poll() is None:  # the Ctrl-C test did not run (or failed): stop it all
            os.killpg(standalone.pid, signal.SIGINT)
            try:
                standalone.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(standalone.pid, signal.SIGKILL)
        airflow_group = re.search(r"process group (\d+)", (tmp / "standalone.out").read_text())
        if airflow_group and _group(int(airflow_group.group(1))):
            os.killpg(int(airflow_group.group(1)), signal.SIGKILL)
        output.close()
        local_postgres.stop(data_dir / "postgres")


def _group(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        state, _ppid, pgrp = raw[raw.rfind(")") + 2 :].split()[:3]
        if int(pgrp) == pgid and state not in {"Z", "X"}:
            members.append(int(entry.name))
    return members


def _airflow_group(stack: Stack) -> int:
    found = re.search(r"process group (\d+)", stack.output.read_text())
    assert found, stack.output.read_text()[-4000:]
    return int(found.group(1))


def test_make_up_serves_the_ui_and_prints_the_login(stack: Stack) -> None:
    """What `make up` prints: the UI's address, the login (the one Airflow stored), where uploads go."""
    with urllib.request.urlopen(f"{stack.base}/api/v2/monitor/health", timeout=10) as response:
        assert json.loads(response.read())["metadatabase"]["status"] == "healthy"
    printed = wait_for(
        lambda: re.search(r"Login:\s+user '(\w+)'\s+password (\S+)", stack.output.read_text()), 60, "the login"
    )
    stored = json.loads((stack.airflow_home / "simple_auth_manager_passwords.json.generated").read_text())
    assert stored == {printed.group(1): printed.group(2)}
    output = stack.output.read_text()
    assert f"http://127.0.0.1:{stack.port}" in output
    assert str(stack.storage / "pending") in output and (stack.storage / "pending").is_dir()
    assert "one_shot" in output
    airflow_group = _airflow_group(stack)
    assert airflow_group != stack.standalone.pid  # Airflow has a group of its own, so Ctrl-C reaches only us
    assert len(_group(airflow_group)) >= 5  # standalone + api-server, scheduler, dag-processor, triggerer


def _button(label: str, scope: str = "document") -> str:
    """JS for the button whose text or aria-label is ``label``."""
    return (
        f"[...{scope}.querySelectorAll('button')].find(b => (b.getAttribute('aria-label') || '').trim() === "
        f"{json.dumps(label)} || b.innerText.trim() === {json.dumps(label)})"
    )


@dataclass
class Processed:
    run_id: str
    hourly_run_id: str
    good_id: str
    bad_id: str
    index: dict[str, int]  # file name -> map index
    # The rejected video's task names with all its tasks finished and the run still going.
    labels_while_running: dict[str, str | None] | None


@pytest.fixture(scope="module")
def processed(stack: Stack) -> Processed:
    """Trigger from the form with its defaults while the hourly run waits; then drop two uploads."""
    hourly = wait_for(
        lambda: stack.airflow(
            "SELECT ti.run_id FROM task_instance ti JOIN dag_run dr USING (dag_id, run_id)"
            " WHERE ti.dag_id = 'video_pipeline' AND ti.task_id = 'wait_for_uploads'"
            " AND dr.run_type = 'scheduled' AND ti.state = 'up_for_reschedule'"
        ),
        300,
        "the hourly run's sensor to wait for uploads",
    )[0][0]

    with stack.browser() as browser:
        browser.open(f"{stack.base}/dags/video_pipeline")
        browser.wait_for(f"!!{_button('Trigger Dag')}", 90, "the Trigger button")
        browser.evaluate(f"{_button('Trigger Dag')}.click()")
        browser.wait_for("document.querySelector('[role=dialog] form, [role=dialog]') !== null", 30, "the form")
        browser.wait_for("document.body.innerText.includes('Run Parameters')", 30, "the params section")
        # The form as it opens: all params valid with their defaults, so Trigger is enabled.
        submit = (
            "[...document.querySelectorAll('[role=dialog] button')].filter(b => b.innerText.trim() === 'Trigger').pop()"
        )
        browser.wait_for(f"{submit} && !{submit}.disabled", 30, "an enabled Trigger button in the form")
        browser.screenshot(stack.shots / "trigger-form.png")
        browser.evaluate(f"{submit}.click()")
        manual = wait_for(
            lambda: stack.airflow(
                "SELECT run_id, conf FROM dag_run WHERE dag_id = 'video_pipeline' AND run_type = 'manual'"
            ),
            60,
            "the manual run the form created",
            interval=1,
        )
    run_id, conf = manual[0]
    conf = conf if isinstance(conf, dict) else json.loads(conf or "{}")
    assert conf.get("one_shot") is False and conf.get("video_id") is None  # the defaults, as submitted

    # The uploads arrive after the trigger: the manual run is to process them, not the hourly one.
    rejected = LabelWatch(stack.airflow_dsn, BAD, run_id=run_id)
    rejected.start()
    pending = stack.storage / "pending"
    clips.make_speech_video(pending / GOOD, SPEECH)
    (pending / BAD).write_text("this is a text file, not a video")

    state = wait_for(
        lambda: (
            (s := stack.airflow("SELECT state FROM dag_run WHERE run_id = %s", (run_id,))[0][0])
            in ("success", "failed")
            and s
        ),
        600,
        "the manual run to finish",
        interval=3,
    )
    labels_while_running = rejected.finish()
    assert state == "success"
    rows = dict(stack.results("SELECT source_key, claim_run_id FROM videos"))
    assert rows == {GOOD: run_id, BAD: run_id}, rows
    ids = dict(stack.results("SELECT source_key, video_id FROM videos"))
    claimed = stack.airflow(
        "SELECT value FROM xcom WHERE run_id = %s AND task_id = 'claim_uploads' AND key = 'return_value'", (run_id,)
    )[0][0]
    claimed = claimed if isinstance(claimed, list) else json.loads(claimed)
    return Processed(
        run_id=run_id,
        hourly_run_id=hourly,
        good_id=ids[GOOD],
        bad_id=ids[BAD],
        index={video["name"]: i for i, video in enumerate(claimed)},
        labels_while_running=labels_while_running,
    )


def test_the_hourly_run_yields_to_the_triggered_one(stack: Stack, processed: Processed) -> None:
    (sensor_state,) = stack.airflow(
        "SELECT state FROM task_instance WHERE run_id = %s AND task_id = 'wait_for_uploads'", (processed.hourly_run_id,)
    )[0]
    assert sensor_state == "skipped"
    (hourly_state,) = stack.airflow("SELECT state FROM dag_run WHERE run_id = %s", (processed.hourly_run_id,))[0]
    assert hourly_state == "success"


def test_outputs_links_open_the_report_through_the_plugin(stack: Stack, processed: Processed) -> None:
    def link(task: str, name: str) -> str:
        (value,) = stack.airflow(
            "SELECT value FROM xcom WHERE run_id = %s AND task_id = %s AND map_index = %s"
            " AND key = '_link_VideoOutputsLink'",
            (processed.run_id, task, processed.index[name]),
        )[0]
        return value if isinstance(value, str) else json.loads(value)

    report_link = link("video.publish", GOOD)
    assert report_link == f"/video-pipeline/outputs/{processed.good_id}/report.html"
    rejected_link = link("video.transcode", BAD)
    assert rejected_link == f"/video-pipeline/ui/?video={processed.bad_id}"

    # Without a login the outputs are not served.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(stack.base + report_link, timeout=10)
    assert refused.value.code in (401, 403)

    # Extra links are on the task instance's Details tab.
    task = f"tasks/video.publish/mapped/{processed.index[GOOD]}"
    publish_page = f"{stack.base}/dags/video_pipeline/runs/{processed.run_id}/{task}/details"
    with stack.browser() as browser:
        browser.open(publish_page)
        href = browser.wait_for(
            "[...document.querySelectorAll('a')].filter(a => a.innerText.trim() === 'Outputs')"
            ".map(a => a.getAttribute('href')).pop()",
            90,
            "the Outputs button in the task's Extra Links",
        )
        assert href == report_link
        browser.evaluate("[...document.querySelectorAll('a')].find(a => a.innerText.trim() === 'Outputs').click()")
        browser.wait_for("location.pathname.endsWith('/report.html')", 30, "the report to open")
        browser.wait_for("document.documentElement.getAttribute('data-ready') === '1'", 30, "the report's script")
        browser.wait_for("document.documentElement.getAttribute('data-poster') === 'loaded'", 30, "the poster")
        assert "budget" in browser.text().lower()

    # Byte ranges, so the player can seek (the report's CSP keeps its page from fetching, so ask here).
    video_url = stack.base + report_link.replace("report.html", "video.mp4")
    ranged = urllib.request.Request(video_url, headers={"Cookie": f"_token={stack.token}", "Range": "bytes=0-99"})
    with urllib.request.urlopen(ranged, timeout=30) as response:
        assert response.status == 206 and response.headers["Content-Type"] == "video/mp4"
        assert len(response.read()) == 100

    # Published files are readable by others, as a web server expects (mkstemp makes them 0600).
    folder = stack.storage / "outputs" / processed.good_id
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()}
    assert modes and all(mode & 0o044 == 0o044 for mode in modes.values()), modes


def test_a_failure_shows_its_reason_by_the_users_file_name(stack: Stack, processed: Processed) -> None:
    index = processed.index[BAD]
    notes = dict(
        stack.airflow(
            "SELECT ti.task_id, n.content FROM task_instance ti"
            " LEFT JOIN task_instance_note n ON n.ti_id = ti.id"
            " WHERE ti.run_id = %s AND ti.map_index = %s AND ti.task_id LIKE 'video.%%'",
            (processed.run_id, index),
        )
    )
    assert set(notes) == {"video.transcode", "video.transcribe", "video.analyze", "video.publish"}
    for note in notes.values():
        assert note and note.startswith(f"{BAD}: not_media: {BAD} is not a video or audio file"), notes
    labels = dict(
        stack.airflow(
            "SELECT task_id, rendered_map_index FROM task_instance WHERE run_id = %s AND map_index = %s",
            (processed.run_id, index),
        )
    )
    assert set(labels.values()) == {BAD}, labels  # not "1": the skipped tasks are named too
    # ... and as soon as they were skipped, while the run still went (not only by the run-end listener).
    group = ("video.transcode", "video.transcribe", "video.analyze", "video.publish")
    assert processed.labels_while_running == dict.fromkeys(group, BAD), processed.labels_while_running
    (run_note,) = stack.airflow(
        "SELECT n.content FROM dag_run dr JOIN dag_run_note n ON n.dag_run_id = dr.id WHERE dr.run_id = %s",
        (processed.run_id,),
    )[0]
    assert run_note.startswith("2 video(s): 1 completed, 1 failed.") and f"✗ {BAD}: not_media" in run_note

    # Where a user looks: the task's page in the UI shows the note, and the task by the video's name.
    run_page = f"{stack.base}/dags/video_pipeline/runs/{processed.run_id}"
    with stack.browser() as browser:
        browser.open(f"{run_page}/tasks/video.analyze/mapped/{index}")
        browser.wait_for(f"document.body.innerText.includes({json.dumps(BAD + ': not_media')})", 90, "the note")
        # The page's title: "analyze [bad upload.mp4]", not "analyze [1]".
        browser.wait_for(f"document.body.innerText.includes({json.dumps(f'[{BAD}]')})", 30, "the task by name")
        browser.screenshot(stack.shots / "failure-note.png")
        # The list the grid opens for a mapped task names each instance (the Map Index column).
        browser.open(f"{run_page}/tasks/video.publish/mapped")
        names = (
            "[...document.querySelectorAll('td a')].map(a => a.innerText.trim())"
            f".filter(t => [{json.dumps(BAD)}, {json.dumps(GOOD)}].includes(t))"
        )
        listed = browser.wait_for(f"{names}.length === 2 && {names}", 60, "the mapped instances by name")
        assert sorted(listed) == [BAD, GOOD]


def test_the_api_docs_render_without_internet(stack: Stack) -> None:
    with stack.browser() as browser:
        browser.open(f"{stack.base}/video-pipeline/docs")
        count = browser.wait_for("document.querySelectorAll('.opblock').length", 60, "Swagger UI's operations")
        assert count >= 7
        assert "/search" in browser.text()


def _frame(expression: str) -> str:
    """JS evaluated in the Videos page inside the Airflow UI's frame."""
    return f"(() => {{ const d = document.querySelector('iframe').contentDocument; return {expression}; }})()"


def test_the_videos_page_lists_filters_searches_and_plays_from_the_hit(stack: Stack, processed: Processed) -> None:
    with stack.browser() as browser:
        browser.open(f"{stack.base}/plugin/videos")
        browser.wait_for(_frame("d && d.body && d.body.dataset.ready === '1'"), 90, "the Videos page in its frame")
        rows = browser.evaluate(_frame("[...d.querySelectorAll('#rows tr')].map(r => r.innerText)"))
        assert len(rows) == 2
        failed_row = next(r for r in rows if BAD in r)
        assert "not_media" in failed_row and f"{BAD} is not a video or audio file" in failed_row
        browser.screenshot(stack.shots / "videos-page.png")

        # Filter by state.
        choose = (
            "(d.getElementById('state').value = {!r}, d.getElementById('state').dispatchEvent(new Event('change')), 1)"
        )
        browser.evaluate(_frame(choose.format("failed")))
        browser.wait_for(_frame("d.querySelectorAll('#rows tr').length === 1"), 30, "the failed filter")
        assert BAD in browser.evaluate(_frame("d.getElementById('rows').innerText"))
        browser.evaluate(_frame(choose.format("")))
        browser.wait_for(_frame("d.querySelectorAll('#rows tr').length === 2"), 30, "all videos again")

        # Search a word said in the clip (in another form: "budget" finds "budgets" too).
        browser.evaluate(
            _frame("(d.getElementById('q').value = 'approve', d.getElementById('search-form').requestSubmit(), 1)")
        )
        browser.wait_for(_frame("d.body.dataset.hits && d.body.dataset.hits !== '0'"), 30, "search hits")
        hit = browser.evaluate(
            _frame(
                "(() => { const li = [...d.querySelectorAll('#hits li')].find(l => l.dataset.start !== '');"
                " return {start: Number(li.dataset.start), text: li.innerText,"
                " marked: [...li.querySelectorAll('mark')].map(m => m.textContent)}; })()"
            )
        )
        assert GOOD in hit["text"] and hit["marked"] == ["approved"], hit
        said_at = stack.results(
            "SELECT (s->>'start')::float FROM transcripts t, jsonb_array_elements(t.segments) s"
            " WHERE t.video_id = %s AND t.is_current AND s->>'text' LIKE '%%approved%%'",
            (processed.good_id,),
        )
        assert [hit["start"]] == [row[0] for row in said_at] and hit["start"] > 0
        browser.evaluate(_frame("([...d.querySelectorAll('#hits li')].find(l => l.dataset.start !== '').click(), 1)"))
        seeked = browser.wait_for(_frame("d.getElementById('player').dataset.seekedTo"), 30, "the player to seek")
        assert abs(float(seeked) - hit["start"]) < 0.5, (seeked, hit)
        assert browser.evaluate(_frame("d.getElementById('player').currentSrc")).endswith(
            f"/video-pipeline/outputs/{processed.good_id}/video.mp4"
        )
        browser.evaluate(_frame("(d.getElementById('player').pause(), 1)"))
        browser.screenshot(stack.shots / "videos-search.png")

        # Reprocess the failed one: a run with reprocess=video starts.
        browser.evaluate(
            _frame("(d.querySelector(`tr[data-video-id='" + processed.bad_id + "'] button.reprocess`).click(), 1)")
        )
        run_id = browser.wait_for(_frame("d.body.dataset.reprocessRun"), 30, "the reprocess run")
    (conf,) = stack.airflow("SELECT conf FROM dag_run WHERE run_id = %s", (run_id,))[0]
    conf = conf if isinstance(conf, dict) else json.loads(conf)
    assert conf == {"reprocess": "video", "video_id": processed.bad_id, "one_shot": True}


def test_the_videos_page_in_russian_and_without_permission(stack: Stack) -> None:
    with stack.browser() as browser:
        browser.open(f"{stack.base}/video-pipeline/ui/?lang=ru&q=бюджета")
        browser.wait_for("document.body.dataset.ready === '1'", 60, "the page")
        assert browser.evaluate("document.querySelector('h1').textContent") == "Видео"
        assert browser.evaluate("document.documentElement.lang") == "ru"
        assert "Найти" in browser.text()
    # With no choice on the page: Airflow's language setting (the UI keeps it in this origin's
    # localStorage), else the browser's language.
    with stack.browser() as browser:
        browser.open(f"{stack.base}/video-pipeline/ui/")
        browser.wait_for("document.body.dataset.ready === '1'", 60, "the page")
        assert browser.evaluate("document.querySelector('h1').textContent") == "Videos"
        browser.evaluate("localStorage.setItem('i18nextLng', 'ru')")  # what Airflow's language menu stores
        browser.open(f"{stack.base}/video-pipeline/ui/")
        browser.wait_for("document.querySelector('h1').textContent === 'Видео'", 60, "Airflow's language")
    with Browser(lang="ru-RU") as browser:
        browser.open(f"{stack.base}/video-pipeline/ui/")
        assert browser.evaluate("navigator.language").startswith("ru")
        browser.wait_for("document.querySelector('h1').textContent === 'Видео'", 60, "the browser's language")
    # Without a login the page's data calls are refused, and the page says why.
    browser = Browser()
    try:
        browser.open(f"{stack.base}/video-pipeline/ui/")
        browser.wait_for("document.body.dataset.ready === '1'", 60, "the page")
        assert browser.evaluate("document.querySelectorAll('#rows tr').length") == 0
        assert "permission" in browser.evaluate("document.getElementById('message').textContent")
    finally:
        browser.close()


# Last in the file: it stops the stack the tests above share.
def test_ctrl_c_stops_every_airflow_process(stack: Stack) -> None:
    airflow_group = _airflow_group(stack)
    # What Ctrl-C in the terminal does: SIGINT to standalone.py's own group, which Airflow is not part of.
    os.killpg(stack.standalone.pid, signal.SIGINT)
    try:
        stack.standalone.wait(timeout=45)  # standalone.py waits 20 s after SIGTERM before SIGKILL
    except subprocess.TimeoutExpired:
        pytest.fail(f"standalone.py still running 45 s after SIGINT:\n{stack.output.read_text()[-4000:]}")
    assert stack.standalone.returncode == 0, stack.output.read_text()[-4000:]
    assert _group(airflow_group) == [], f"left behind: {_group(airflow_group)}"
    assert _group(stack.standalone.pid) == []
    assert "every Airflow process has stopped" in stack.output.read_text()
    assert not _health(stack.port)
