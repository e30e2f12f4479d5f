/* Paywire dashboard: copy buttons, confirmations and the live tail. Every page works without it. */
(function () {
  "use strict";

  // Copy buttons: data-copy names the element whose text is copied.
  document.addEventListener("click", function (ev) {
    var button = ev.target.closest("button.copy");
    if (!button) return;
    var source = document.getElementById(button.getAttribute("data-copy"));
    if (!source) return;
    var text = source.textContent;
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { selectText(source); });
    } else {
      selectText(source);
      try { document.execCommand("copy"); done(); } catch (e) { /* selected: the user copies */ }
    }
  });

  function selectText(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  // Buttons with data-confirm ask first (the server-side confirmation pages stay the real step).
  document.addEventListener("click", function (ev) {
    var button = ev.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) ev.preventDefault();
  });

  // "All events" disables the individual checkboxes.
  var all = document.getElementById("all_events");
  var checks = document.getElementById("event-checks");
  if (all && checks) {
    var sync = function () { checks.classList.toggle("disabled", all.checked); };
    all.addEventListener("change", sync);
    sync();
  }

  // Live tail: EventSource on the session cookie; Pause keeps events and shows them on resume.
  var feed = document.getElementById("live-feed");
  if (!feed || !window.EventSource) return;
  var prefix = feed.getAttribute("data-prefix");
  var status = document.getElementById("live-status");
  var pauseButton = document.getElementById("live-pause");
  var clearButton = document.getElementById("live-clear");
  var typeInput = document.getElementById("live-type");
  var paused = false;
  var held = [];
  var MAX_ROWS = 500;

  function setStatus(text, kind) {
    status.textContent = text;
    status.className = "badge badge-" + kind;
  }

  function wanted(type) {
    var filter = (typeInput.value || "").trim();
    if (!filter || filter === "*") return true;
    if (filter.slice(-1) === "*") return type.indexOf(filter.slice(0, -1)) === 0;
    return type === filter;
  }

  function show(event) {
    var empty = feed.querySelector(".live-empty");
    if (empty) empty.remove();
    var li = document.createElement("li");
    li.className = "live-row";
    li.setAttribute("data-type", event.type);
    var time = document.createElement("time");
    var when = new Date(event.created * 1000);
    time.setAttribute("datetime", when.toISOString());
    time.title = when.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
    time.textContent = when.toLocaleString();
    time.className = "muted small nowrap";
    var link = document.createElement("a");
    link.href = prefix + "/events/" + encodeURIComponent(event.id);
    link.textContent = event.type;
    link.className = "live-type";
    var object = document.createElement("span");
    object.className = "mono small";
    object.textContent = event.object_id;
    var id = document.createElement("span");
    id.className = "mono small muted";
    id.textContent = event.id;
    li.append(time, link, object, id);
    if (!wanted(event.type)) li.hidden = true;
    feed.insertBefore(li, feed.firstChild);
    while (feed.children.length > MAX_ROWS) feed.removeChild(feed.lastChild);
  }

  typeInput.addEventListener("input", function () {
    feed.querySelectorAll("li.live-row").forEach(function (li) { li.hidden = !wanted(li.getAttribute("data-type")); });
  });

  pauseButton.addEventListener("click", function () {
    paused = !paused;
    pauseButton.textContent = paused ? "Resume" : "Pause";
    if (paused) {
      setStatus("Paused", "warn");
    } else {
      held.forEach(show);
      held = [];
      setStatus("Live", "ok");
    }
  });

  clearButton.addEventListener("click", function () {
    feed.querySelectorAll("li.live-row").forEach(function (li) { li.remove(); });
  });

  var source = new EventSource(feed.getAttribute("data-stream"));
  source.onopen = function () { if (!paused) setStatus("Live", "ok"); };
  source.onerror = function () { setStatus("Reconnecting…", "muted"); };
  source.onmessage = function (message) {
    var event;
    try { event = JSON.parse(message.data); } catch (e) { return; }
    if (paused) {
      held.push(event);
      setStatus("Paused (" + held.length + " new)", "warn");
    } else {
      show(event);
    }
  };
})();
