(function () {
  "use strict";
  var root = document.documentElement;
  var video = document.getElementById("player");
  var poster = document.getElementById("poster");
  var params = {};
  location.hash.replace(/^#/, "").split("&").forEach(function (pair) {
    var i = pair.indexOf("=");
    if (i > 0) {
      try { params[pair.slice(0, i)] = decodeURIComponent(pair.slice(i + 1)); } catch (e) { /* ignore */ }
    }
  });
  function absolute(url) { return typeof url === "string" && /^https?:\/\//i.test(url) ? url : null; }
  if (absolute(params.poster)) {
    if (poster) { poster.src = params.poster; }
    if (video) { video.poster = params.poster; }
  }
  if (video && absolute(params.subtitles)) {
    var track = video.querySelector("track");
    if (track) { track.src = params.subtitles; }
  }
  if (video && absolute(params.video)) { video.src = params.video; }
  function seek(t) {
    if (!video || !isFinite(t)) { return; }
    video.currentTime = t;
    var played = video.play();
    if (played && played.catch) { played.catch(function () { /* autoplay refused: stay paused */ }); }
  }
  document.addEventListener("click", function (ev) {
    var link = ev.target.closest ? ev.target.closest("a[data-t]") : null;
    if (!link || !video) { return; }
    ev.preventDefault();
    seek(parseFloat(link.getAttribute("data-t")));
    video.scrollIntoView({block: "nearest", behavior: "smooth"});
  });
  if (video && params.t) {
    video.addEventListener("loadedmetadata", function () { video.currentTime = parseFloat(params.t) || 0; },
                           {once: true});
  }
  if (video) {
    var segments = Array.prototype.slice.call(document.querySelectorAll(".segment[data-start]"));
    var current = null;
    video.addEventListener("timeupdate", function () {
      var now = video.currentTime, found = null;
      for (var i = 0; i < segments.length; i++) {
        if (parseFloat(segments[i].getAttribute("data-start")) <= now) { found = segments[i]; } else { break; }
      }
      if (found !== current) {
        if (current) { current.classList.remove("playing"); }
        if (found) { found.classList.add("playing"); }
        current = found;
      }
    });
  }
  function posterState(state) {
    root.setAttribute("data-poster", state);
    if (poster && state === "failed") { poster.classList.add("broken"); }
  }
  if (poster) {
    if (poster.complete) { posterState(poster.naturalWidth > 0 ? "loaded" : "failed"); }
    poster.addEventListener("load", function () { posterState(poster.naturalWidth > 0 ? "loaded" : "failed"); });
    poster.addEventListener("error", function () { posterState("failed"); });
  }
  root.setAttribute("data-ready", "1");
})();
