// vidlang serve: play a clicked moment in the one player. No framework, nothing external.
"use strict";
(function () {
  const player = document.getElementById("player");
  const box = document.getElementById("player-box");
  const label = document.getElementById("now-playing");
  if (!player) return;
  let stopAt = null;

  function showCursor() {
    document.querySelectorAll(".timeline .cursor").forEach((c) => { c.hidden = true; });
    const card = document.querySelector(`.result[data-video="${CSS.escape(player.dataset.video || "")}"]`);
    if (!card || !player.duration) return;
    const cursor = card.querySelector(".timeline .cursor");
    if (!cursor) return;
    cursor.hidden = false;
    cursor.style.left = `${(100 * player.currentTime) / player.duration}%`;
  }

  function play(video, src, start, end) {
    if (!src) return;
    box.hidden = false;
    const go = () => {
      stopAt = end;
      player.currentTime = start;
      const p = player.play();
      if (p && p.catch) p.catch(() => {});
    };
    if (player.dataset.video !== video) {
      player.dataset.video = video;
      player.src = src;
      player.addEventListener("loadedmetadata", go, { once: true });
      player.load();
    } else if (player.readyState >= 1) {
      go();
    } else {
      player.addEventListener("loadedmetadata", go, { once: true });
    }
    player.dataset.start = String(start);
    label.textContent = end == null ? `${video} from ${start.toFixed(1)} s`
      : `${video}: ${start.toFixed(1)}–${end.toFixed(1)} s`;
  }

  player.addEventListener("timeupdate", () => {
    if (stopAt != null && player.currentTime >= stopAt) { player.pause(); stopAt = null; }
    showCursor();
  });
  player.addEventListener("seeked", showCursor);

  document.addEventListener("click", (event) => {
    const el = event.target.closest("[data-start][data-src]");
    if (!el || el.disabled) return;
    event.preventDefault();
    document.querySelectorAll(".active").forEach((a) => a.classList.remove("active"));
    el.classList.add("active");
    const end = el.dataset.end === undefined ? null : parseFloat(el.dataset.end);
    play(el.dataset.video, el.dataset.src, parseFloat(el.dataset.start), end);
  });
})();
