// The Videos page: the library list, transcript search and a player that seeks to each hit.
// Every piece of data comes from this plugin's API with the user's Airflow session (the
// UI's cookie, or its token); text from the API is only ever set as textContent.
"use strict";

(function () {
  const ROOT = document.body.dataset.root || "/video-pipeline";
  const AIRFLOW = ROOT.replace(/\/video-pipeline$/, "");
  const DAG_ID = "video_pipeline";
  const $ = (id) => document.getElementById(id);

  const LABELS = {
    en: {
      title: "Videos", search: "Search", searchPlaceholder: "Search what was said, titles, summaries, tags…",
      state: "State", all: "all", completed: "completed", failed: "failed", processing: "processing",
      pending: "pending", from: "From", to: "To", language: "Language", results: "Search results",
      close: "Close", name: "Name", duration: "Duration", speakers: "Speakers", arrived: "Arrived",
      finished: "Finished", cost: "Cost", reprocess: "Reprocess", open: "Open", report: "Report",
      run: "Airflow run", outputs: "Outputs", reason: "Reason", loading: "Loading…",
      noVideos: "No videos match these filters.", noHits: "Nothing found for “{q}”.",
      hits: "{n} hit(s) in {ms} ms", videosCount: "{n} video(s)", forbidden:
        "You have no permission to read video_pipeline runs, or your Airflow session has expired: log in again.",
      reprocessStarted: "Reprocessing {name}: run {run} started.", reprocessFailed: "Could not start the run: {msg}",
      inName: "in the name or title", inSummary: "in the summary", inTags: "in the tags", noPlayer:
        "No video file (rejected upload, or audio only).",
    },
    ru: {
      title: "Видео", search: "Найти", searchPlaceholder: "Поиск по сказанному, названиям, описаниям, тегам…",
      state: "Состояние", all: "все", completed: "готово", failed: "ошибка", processing: "в работе",
      pending: "в очереди", from: "С", to: "По", language: "Язык", results: "Результаты поиска",
      close: "Закрыть", name: "Файл", duration: "Длительность", speakers: "Говорящие", arrived: "Загружено",
      finished: "Готово", cost: "Стоимость", reprocess: "Обработать заново", open: "Открыть", report: "Отчёт",
      run: "Запуск Airflow", outputs: "Файлы", reason: "Причина", loading: "Загрузка…",
      noVideos: "Нет видео с такими фильтрами.", noHits: "По запросу «{q}» ничего не найдено.",
      hits: "Найдено: {n} за {ms} мс", videosCount: "Видео: {n}", forbidden:
        "Нет права читать запуски video_pipeline, или сессия Airflow истекла: войдите снова.",
      reprocessStarted: "{name} обрабатывается заново: запуск {run}.", reprocessFailed: "Не удалось запустить: {msg}",
      inName: "в названии", inSummary: "в описании", inTags: "в тегах", noPlayer:
        "Видеофайла нет (файл отклонён или это только звук).",
    },
  };

  function pickLanguage() {
    const params = new URLSearchParams(location.search);
    const candidates = [params.get("lang"), localStorage.getItem("video-pipeline-lang"),
      localStorage.getItem("i18nextLng"), ...(navigator.languages || [navigator.language])];
    for (const c of candidates) {
      const code = (c || "").toLowerCase().split("-")[0];
      if (LABELS[code]) return code;
    }
    return "en";
  }

  let lang = pickLanguage();
  const t = (key, vars) => {
    let text = (LABELS[lang] && LABELS[lang][key]) || LABELS.en[key] || key;
    for (const [k, v] of Object.entries(vars || {})) text = text.replace(`{${k}}`, String(v));
    return text;
  };

  function applyLabels() {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
    document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => {
      el.placeholder = t(el.dataset.i18nPlaceholder);
    });
    $("lang").value = lang;
  }

  async function api(path, options) {
    const headers = { Accept: "application/json", ...((options && options.headers) || {}) };
    const token = localStorage.getItem("token");
    if (token && !document.cookie.includes("_token=")) headers.Authorization = `Bearer ${token}`;
    const response = await fetch(ROOT + path, { credentials: "same-origin", ...options, headers });
    if (response.status === 401 || response.status === 403) throw new Error(t("forbidden"));
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(typeof body.detail === "string" ? body.detail : response.statusText);
    return body;
  }

  function say(text, isError) {
    $("message").textContent = text || "";
    $("message").classList.toggle("error", Boolean(isError));
  }

  const el = (tag, props, ...children) => {
    const node = document.createElement(tag);
    Object.assign(node, props || {});
    for (const child of children) if (child != null) node.append(child);
    return node;
  };

  function clock(seconds) {
    if (seconds == null) return "";
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    const pad = (n) => String(n).padStart(2, "0");
    return h ? `${h}:${pad(m)}:${pad(r)}` : `${m}:${pad(r)}`;
  }
  const when = (iso) => (iso ? new Date(iso).toLocaleString(lang) : "");
  const money = (usd) => (usd == null ? "" : `$${Number(usd).toFixed(usd < 0.01 ? 4 : 2)}`);
  const stateLabel = (state) => el("span", { className: `state state-${state}`, textContent: t(state) });
  const runUrl = (runId) => `${AIRFLOW}/dags/${DAG_ID}/runs/${encodeURIComponent(runId)}`;

  let library = new Map();

  function filters() {
    const params = new URLSearchParams();
    if ($("state").value) params.set("state", $("state").value);
    if ($("since").value) params.set("since", `${$("since").value}T00:00:00Z`);
    if ($("until").value) {
      const end = new Date(`${$("until").value}T00:00:00Z`);
      end.setUTCDate(end.getUTCDate() + 1);
      params.set("until", end.toISOString());
    }
    return params;
  }

  async function loadList() {
    const body = await api(`/library?${filters()}`);
    library = new Map(body.videos.map((v) => [v.video_id, v]));
    const rows = $("rows");
    rows.replaceChildren();
    for (const v of body.videos) {
      const nameCell = el("td", {}, el("div", { textContent: v.name }));
      if (v.title) nameCell.append(el("div", { className: "title", textContent: v.title }));
      const stateCell = el("td", {}, stateLabel(v.state));
      if (v.state === "failed") {
        stateCell.append(el("div", { className: "reason", textContent: [v.error_reason, v.error_message].filter(Boolean).join(": ") }));
      }
      const actions = el("td");
      if (v.state === "failed") {
        actions.append(el("button", {
          type: "button", className: "reprocess", textContent: t("reprocess"),
          onclick: (event) => { event.stopPropagation(); reprocess(v); },
        }));
      }
      const row = el("tr", { className: "video" }, nameCell, stateCell,
        el("td", { textContent: clock(v.duration_seconds) }), el("td", { textContent: v.language || "" }),
        el("td", { textContent: (v.speakers || []).join(", ") }), el("td", { textContent: when(v.arrived_at) }),
        el("td", { textContent: when(v.finished_at) }), el("td", { textContent: money(v.cost_usd) }), actions);
      row.dataset.videoId = v.video_id;
      row.dataset.state = v.state;
      row.onclick = () => openVideo(v.video_id, null);
      rows.append(row);
    }
    say(body.videos.length ? t("videosCount", { n: body.videos.length }) : t("noVideos"));
    document.body.dataset.listed = String(body.videos.length);
  }

  async function runSearch(q) {
    const params = filters();
    params.set("q", q);
    const body = await api(`/search?${params}`);
    const hits = $("hits");
    hits.replaceChildren();
    $("results").hidden = false;
    $("results-meta").textContent = t("hits", { n: body.count, ms: Math.round(body.took_ms) });
    if (!body.hits.length) hits.append(el("li", { className: "empty", textContent: t("noHits", { q }) }));
    for (const hit of body.hits) {
      const where = hit.kind === "segment" ? clock(hit.start_seconds)
        : t({ title: "inName", summary: "inSummary", tags: "inTags" }[hit.kind]);
      const snippet = el("div", { className: "snippet" });
      for (const part of hit.snippet) snippet.append(part.hit ? el("mark", { textContent: part.text }) : part.text);
      const item = el("li", {}, el("div", { className: "hit-head" },
        el("span", { className: "hit-time", textContent: where }), el("strong", { textContent: hit.name }),
        stateLabel(hit.state)), snippet);
      item.dataset.videoId = hit.video_id;
      item.dataset.start = hit.start_seconds == null ? "" : String(hit.start_seconds);
      item.onclick = () => openVideo(hit.video_id, hit.start_seconds);
      hits.append(item);
    }
    document.body.dataset.hits = String(body.hits.length);
  }

  async function openVideo(videoId, start) {
    const video = await api(`/videos/${encodeURIComponent(videoId)}`);
    const row = library.get(videoId) || {};
    $("detail").hidden = false;
    $("detail-name").textContent = video.name;
    const files = new Map(((video.outputs && video.outputs.files) || []).map((f) => [f.name, f.url]));
    const player = $("player");
    delete player.dataset.seekedTo;
    const source = files.get("video.mp4");
    player.hidden = !source;
    const info = $("detail-info");
    info.replaceChildren();
    if (source) {
      if (files.get("poster.jpg")) player.poster = files.get("poster.jpg");
      const seek = () => {
        if (start != null) player.currentTime = start;
        player.play().catch(() => {});
      };
      player.onseeked = () => { player.dataset.seekedTo = String(Math.round(player.currentTime * 10) / 10); };
      if (player.getAttribute("src") === source && player.readyState >= 1) seek();
      else { player.onloadedmetadata = seek; player.src = source; }
    } else {
      player.removeAttribute("src");
      info.append(el("p", { className: "title", textContent: t("noPlayer") }));
    }
    const facts = el("dl");
    const add = (label, value) => { if (value) facts.append(el("dt", { textContent: label }), el("dd", {}, value)); };
    add(t("state"), stateLabel(video.state));
    if (video.state === "failed") {
      add(t("reason"), [row.error_reason || (video.error && video.error.reason),
        row.error_message || (video.error && video.error.message)].filter(Boolean).join(": "));
    }
    add(t("duration"), clock(video.transcript && video.transcript.duration_seconds));
    add(t("language"), video.transcript && video.transcript.language);
    add(t("arrived"), when(row.arrived_at || video.created_at));
    add(t("finished"), when(video.finished_at));
    info.append(facts);
    if (video.analysis && video.analysis.summary) info.append(el("p", { textContent: video.analysis.summary }));
    const links = el("div", { className: "links" });
    if (files.get("report.html")) {
      links.append(el("a", { href: files.get("report.html"), target: "_blank", rel: "noopener", textContent: t("report") }));
    }
    const runId = row.run_id;
    if (runId) links.append(el("a", { href: runUrl(runId), target: "_top", textContent: t("run") }));
    if (video.state === "failed") {
      links.append(el("button", { type: "button", className: "reprocess", textContent: t("reprocess"),
        onclick: () => reprocess({ video_id: video.video_id, name: video.name }) }));
    }
    info.append(links);
    if (files.size) {
      const list = el("ul", { className: "outputs" });
      for (const [name, url] of files) list.append(el("li", {}, el("a", { href: url, target: "_blank", rel: "noopener", textContent: name })));
      info.append(el("details", {}, el("summary", { textContent: t("outputs") }), list));
    }
    $("detail").scrollIntoView({ block: "nearest" });
    const url = new URL(location.href);
    url.searchParams.set("video", videoId);
    if (start != null) url.searchParams.set("t", String(Math.floor(start))); else url.searchParams.delete("t");
    history.replaceState(null, "", url);
  }

  async function reprocess(video) {
    try {
      const started = await api(`/videos/${encodeURIComponent(video.video_id)}/reprocess`, { method: "POST" });
      say(t("reprocessStarted", { name: video.name, run: started.run_id }));
      document.body.dataset.reprocessRun = started.run_id;
    } catch (error) {
      say(t("reprocessFailed", { msg: error.message }), true);
    }
  }

  const guard = (fn) => (...args) => fn(...args).catch((error) => say(error.message, true));

  $("search-form").onsubmit = guard(async (event) => {
    event.preventDefault();
    const q = $("q").value.trim();
    const url = new URL(location.href);
    if (q) url.searchParams.set("q", q); else url.searchParams.delete("q");
    history.replaceState(null, "", url);
    if (q) await runSearch(q); else $("results").hidden = true;
  });
  for (const id of ["state", "since", "until"]) {
    $(id).onchange = guard(async () => {
      await loadList();
      if ($("q").value.trim()) await runSearch($("q").value.trim());
    });
  }
  $("lang").onchange = guard(async () => {
    lang = $("lang").value;
    localStorage.setItem("video-pipeline-lang", lang);
    applyLabels();
    await loadList();
  });
  $("detail-close").onclick = () => { $("detail").hidden = true; $("player").pause(); };

  applyLabels();
  say(t("loading"));
  guard(async () => {
    await loadList();
    const params = new URLSearchParams(location.search);
    if (params.get("q")) { $("q").value = params.get("q"); await runSearch(params.get("q")); }
    if (params.get("video")) await openVideo(params.get("video"), params.get("t") ? Number(params.get("t")) : null);
  })().finally(() => { document.body.dataset.ready = "1"; });
})();
