// Zoom for the page overlays: buttons, + / - keys; "fit" fills the window width.
(function () {
  "use strict";
  let zoom = null;
  const figures = Array.from(document.querySelectorAll("figure.page"));
  function apply() {
    for (const figure of figures) {
      const svg = figure.querySelector("svg");
      const natural = Number(figure.dataset.width);
      const fit = figure.clientWidth / natural;
      svg.setAttribute("width", String(Math.round(natural * (zoom === null ? fit : zoom))));
    }
  }
  function change(how) {
    const current = zoom === null ? figures[0].clientWidth / Number(figures[0].dataset.width) : zoom;
    zoom = how === "fit" ? null : Math.min(8, Math.max(0.05, current * Number(how)));
    apply();
  }
  document.querySelectorAll("[data-zoom]").forEach((b) => b.addEventListener("click", () => change(b.dataset.zoom)));
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "INPUT") return;
    if (e.key === "+" || e.key === "=") change("1.25");
    if (e.key === "-") change("0.8");
  });
  if (figures.length) apply();
})();
