// The review queue, keyboard first: type to correct, Enter accepts or saves, "?" marks
// illegible, arrow up / down move without deciding. The next item's crop is preloaded and
// more items are fetched before the list runs out.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const filters = new URLSearchParams(window.location.search);
  const items = JSON.parse(document.getElementById("first-items").textContent);
  const $ = (id) => document.getElementById(id);
  const answer = $("answer");
  let index = 0;
  let loading = null;
  let exhausted = false;
  let busy = false;

  function lastId() { return items.length ? items[items.length - 1].id : 0; }

  function fetchMore() {
    if (loading || exhausted) return loading;
    const params = new URLSearchParams(filters);
    params.set("after", String(lastId()));
    params.set("limit", "5");
    loading = fetch("/api/queue?" + params.toString(), { credentials: "same-origin" })
      .then((r) => r.json())
      .then((data) => {
        if (!data.items.length) exhausted = true;
        items.push(...data.items);
      })
      .finally(() => { loading = null; });
    return loading;
  }

  function preload() {
    for (let i = index + 1; i <= index + 2 && i < items.length; i++) {
      const img = new Image();
      img.src = items[i].crop_url;
    }
    if (items.length - index <= 3) fetchMore();
  }

  function digitsHtml(item) {
    return item.digits.map((d) => {
      const unsure = d.confidence < 0.9 ? " unsure" : "";
      const runner = d.runner_up ? `or ${d.runner_up} ${d.runner_up_confidence.toFixed(2)}` : "";
      return `<span class="digit${unsure}"><b>${escapeHtml(d.digit || "")}</b>` +
        `<small>${d.confidence.toFixed(2)}</small><small>${escapeHtml(runner)}</small></span>`;
    }).join("");
  }

  function escapeHtml(text) {
    return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  }

  function show() {
    const item = items[index];
    $("item").hidden = !item;
    $("empty").hidden = !!item;
    if (!item) return;
    $("crop").src = item.crop_url;
    $("crop").dataset.result = String(item.id);
    const where = [item.template, item.field].filter(Boolean).join(" / ");
    $("meta").innerHTML =
      `<a href="${item.document_url}">${escapeHtml(item.document)}</a>, page ${item.page}` +
      (where ? ` &middot; ${escapeHtml(where)}` : "") +
      ` &middot; read ${escapeHtml(item.text || "(nothing)")} at ${item.confidence.toFixed(2)}` +
      (item.reason ? ` &middot; ${escapeHtml(item.reason)}` : "");
    $("digits").innerHTML = digitsHtml(item);
    const decided = item.review;
    answer.value = decided && decided.text !== null ? decided.text : item.text;
    setState(decided ? `${decided.status} by ${decided.reviewer}` : "", decided ? decided.status : "");
    answer.focus();
    answer.select();
    preload();
  }

  function setState(text, cls) {
    const state = $("state");
    state.textContent = text;
    state.className = "state " + (cls || "");
  }

  async function move(step) {
    if (step > 0 && index + 1 >= items.length) await fetchMore();
    index = Math.max(0, Math.min(items.length, index + step));
    show();
  }

  async function decide(action) {
    const item = items[index];
    if (!item || busy) return;
    const body = new URLSearchParams({ action: action, text: answer.value, csrf_token: csrf });
    busy = true;
    try {
      const response = await fetch(`/api/results/${item.id}/review`, {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf },
      });
      const data = await response.json();
      if (!response.ok) { setState(data.error || "could not save", "error"); return; }
      if (!item.review) {
        const count = $("queue-count");
        count.textContent = String(Math.max(0, Number(count.textContent) - 1));
      }
      item.review = data;
    } catch (err) {
      setState("could not save: " + err, "error");
      return;
    } finally {
      busy = false;
    }
    await move(1);
  }

  answer.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      const item = items[index];
      decide(answer.value.trim() === item.text ? "accept" : "correct");
    } else if (event.key === "?") {
      event.preventDefault();
      decide("illegible");
    } else if (event.key === "ArrowDown") {
      event.preventDefault();
      move(1);
    } else if (event.key === "ArrowUp") {
      event.preventDefault();
      move(-1);
    }
  });
  $("accept").addEventListener("click", () => {
    decide(answer.value.trim() === items[index].text ? "accept" : "correct");
  });
  $("illegible").addEventListener("click", () => decide("illegible"));
  $("prev").addEventListener("click", () => move(-1));
  $("next").addEventListener("click", () => move(1));
  show();
})();
