/*
 * The operators' live inbox in the admin (escalation list and escalation page).
 *
 * Authentication: the page POSTs (same origin, CSRF token) to the admin's ticket URL and sends
 * the single-use ticket it gets as the socket's first frame. The session cookie never travels
 * to the API, and a ticket never appears in a URL.
 *
 * - List (`data-live="list"`): /ws/escalations/. Any event re-reads the list's rows from the
 *   server (same URL, same filters), so rows look exactly like the server renders them; new
 *   escalations are highlighted and counted as unread in the bar and the page title. Presence
 *   frames move the operators' dots; the queue's length comes with every re-read.
 * - SLA badges (list and page) count down from their due time and turn "soon", then
 *   "breached" (the row is highlighted), between server renders.
 * - Page (`data-live="escalation"`): /ws/conversations/<id>/ appends messages as they come
 *   (merged by seq, text only via textContent) and shows status changes; /ws/escalations/
 *   keeps the assignee and status of this escalation current.
 * No inline script or eval: the CSP allows only our own static files.
 */
(function () {
  "use strict";

  const MAX_BACKOFF_MS = 15000;
  const STATUS_LABELS = { open: "Open", assigned: "Assigned", resolved: "Resolved" };
  const ROLE_LABELS = { customer: "Customer", agent: "Agent", operator: "Operator", system: "System" };

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  async function fetchTicket(url) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
    });
    if (!response.ok) throw new Error("ticket refused (" + response.status + ")");
    return (await response.json()).ticket;
  }

  /* One live socket: ticket, first-frame auth, reconnect with backoff, pings. */
  function liveSocket({ path, ticketUrl, authExtra, onFrame, onState }) {
    let attempts = 0;
    let socket = null;
    let pingTimer = null;
    let stopped = false;

    async function connect() {
      if (stopped) return;
      let ticket;
      try {
        ticket = await fetchTicket(ticketUrl);
      } catch (e) {
        onState("offline");
        retry();
        return;
      }
      const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      socket = new WebSocket(scheme + "//" + window.location.host + path);
      socket.addEventListener("open", () => {
        socket.send(JSON.stringify(Object.assign({ type: "auth", ticket }, authExtra ? authExtra() : {})));
      });
      socket.addEventListener("message", (event) => {
        let frame;
        try {
          frame = JSON.parse(event.data);
        } catch (e) {
          return;
        }
        if (frame.type === "auth.ok") {
          attempts = 0;
          onState("live");
          clearInterval(pingTimer);
          pingTimer = setInterval(() => {
            if (socket && socket.readyState === WebSocket.OPEN) socket.send('{"type":"ping"}');
          }, 25000);
        }
        onFrame(frame);
      });
      socket.addEventListener("close", (event) => {
        clearInterval(pingTimer);
        socket = null;
        if (event.code === 4401 || event.code === 4403) {
          // The admin session ended (logout, demotion): reconnecting cannot help.
          onState("ended");
          stopped = true;
          return;
        }
        onState("offline");
        retry();
      });
    }

    function retry() {
      if (stopped) return;
      attempts += 1;
      const base = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(attempts, 6));
      setTimeout(connect, base / 2 + Math.random() * (base / 2));
    }

    connect();
  }

  function showState(node, state) {
    if (!node) return;
    node.dataset.state = state;
    node.textContent = {
      live: "● Live",
      offline: "Reconnecting…",
      ended: "Live updates stopped: reload the page to sign in again.",
    }[state] || "";
  }

  // --- Presence and SLA countdowns ------------------------------------------------------------

  /* An operator's dot in the team bar: online, away (connected, out of routing) or offline. */
  function showPresence(operator, shown) {
    const item = document.querySelector('#parley-operators li[data-operator-id="' + operator.id + '"]');
    if (!item) return;
    const status = shown || operator.status;
    item.dataset.status = status;
    item.title = operator.display_name + ": " + status + ", " + operator.open_assigned + " of " + operator.capacity + " open";
    const load = item.querySelector(".parley-operator-load");
    if (load) load.textContent = operator.open_assigned + "/" + operator.capacity;
    const text = item.querySelector(".parley-operator-status");
    if (text) text.textContent = status;
  }

  function minutesText(seconds) {
    const minutes = Math.floor(Math.abs(seconds) / 60);
    if (minutes < 60) return minutes + " min";
    const hours = Math.floor(minutes / 60);
    const rest = minutes % 60;
    return rest ? hours + " h " + rest + " min" : hours + " h";
  }

  /* Every SLA badge on the page counts down from its due time (rendered by the server, kept
     current here) and turns "soon", then "breached" — the row highlight follows the class. */
  function tickSla() {
    const holder = document.querySelector("[data-due-soon]");
    const soon = holder ? Number(holder.dataset.dueSoon) : 300;
    for (const badge of document.querySelectorAll(".parley-sla[data-due]")) {
      const left = (Date.parse(badge.dataset.due) - Date.now()) / 1000;
      const missed = badge.dataset.missed === "1" || left < 0;
      const state = missed ? "breached" : left <= soon ? "soon" : "ok";
      badge.classList.remove("parley-sla-ok", "parley-sla-soon", "parley-sla-breached");
      badge.classList.add("parley-sla-" + state);
      const label = badge.dataset.label;
      badge.textContent = left < 0 ? label + " overdue " + minutesText(left) : label + " in " + minutesText(left);
      const row = badge.closest("tr");
      if (row) row.classList.toggle("parley-breached", missed);
    }
  }

  // --- The escalation list -------------------------------------------------------------------

  function startList(bar) {
    const baseTitle = document.title;
    const unreadButton = document.getElementById("parley-unread");
    const unread = new Set(); // escalation ids opened since the operator last looked
    let refreshTimer = null;
    let refreshing = false;
    let again = false;

    function renderUnread() {
      const count = unread.size;
      document.title = count ? "(" + count + ") " + baseTitle : baseTitle;
      unreadButton.hidden = count === 0;
      unreadButton.textContent = count + " new";
      for (const row of document.querySelectorAll("#result_list tbody tr")) {
        const id = rowId(row);
        row.classList.toggle("parley-new", id !== null && unread.has(id));
      }
    }

    function rowId(row) {
      const box = row.querySelector("input.action-select");
      return box ? Number(box.value) : null;
    }

    async function refreshRows() {
      if (refreshing) {
        again = true;
        return;
      }
      refreshing = true;
      try {
        const response = await fetch(window.location.href, { credentials: "same-origin" });
        if (!response.ok) return;
        const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
        const freshBody = fresh.querySelector("#result_list tbody");
        const body = document.querySelector("#result_list tbody");
        if (freshBody && body) {
          // Swap the rows, keeping the tbody (the admin's action script listens on it) and the
          // operator's ticked boxes.
          const checked = new Set(
            Array.from(body.querySelectorAll("input.action-select:checked"), (b) => b.value),
          );
          body.replaceChildren(...Array.from(freshBody.children, (row) => document.importNode(row, true)));
          for (const box of body.querySelectorAll("input.action-select")) {
            if (checked.has(box.value)) {
              box.checked = true;
              box.closest("tr").classList.add("selected");
            }
          }
        } else {
          // The list was empty (or became empty): take the whole results form.
          const freshForm = fresh.querySelector("#changelist-form");
          const form = document.querySelector("#changelist-form");
          if (freshForm && form) form.replaceWith(document.importNode(freshForm, true));
        }
        const freshCount = fresh.querySelector(".paginator");
        const count = document.querySelector(".paginator");
        if (freshCount && count) count.replaceWith(document.importNode(freshCount, true));
        // The queue's length and each operator's load change with every event too.
        const freshTeam = fresh.getElementById("parley-team");
        const team = document.getElementById("parley-team");
        if (freshTeam && team) team.replaceWith(document.importNode(freshTeam, true));
        tickSla();
        selectionChanged();
        renderUnread();
      } catch (e) {
        /* offline: the next event or reconnect refreshes again */
      } finally {
        refreshing = false;
        if (again) {
          again = false;
          refreshRows();
        }
      }
    }

    function scheduleRefresh() {
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(refreshRows, 100);
    }

    unreadButton.addEventListener("click", () => {
      unread.clear();
      renderUnread();
    });

    // Django's actions script binds "select all", row ticks and the "N of M selected" counter
    // to the rows and form present at page load; rows swapped in live (or a whole new form,
    // when the list was empty) would be left out. Delegated from the document, these run for
    // whatever is on the page now, after Django's own handlers where those still exist.
    function selectionChanged() {
      const boxes = document.querySelectorAll("#result_list tbody input.action-select");
      let ticked = 0;
      for (const box of boxes) {
        box.closest("tr").classList.toggle("selected", box.checked);
        if (box.checked) ticked += 1;
      }
      const counter = document.querySelector(".action-counter");
      if (counter) counter.textContent = ticked + " of " + boxes.length + " selected";
      const toggle = document.getElementById("action-toggle");
      if (toggle) toggle.checked = boxes.length > 0 && ticked === boxes.length;
    }

    document.addEventListener("click", (event) => {
      if (!(event.target instanceof Element) || event.target.id !== "action-toggle") return;
      for (const box of document.querySelectorAll("#result_list tbody input.action-select")) {
        box.checked = event.target.checked;
      }
      selectionChanged();
    });
    document.addEventListener("change", (event) => {
      if (event.target instanceof Element && event.target.matches("input.action-select")) {
        selectionChanged();
      }
    });

    liveSocket({
      path: "/ws/escalations/",
      ticketUrl: bar.dataset.ticketUrl,
      onState: (state) => {
        showState(document.getElementById("parley-live"), state);
        if (state === "live") scheduleRefresh(); // catch up on anything missed while offline
      },
      onFrame: (frame) => {
        if (frame.type === "operator.presence") {
          showPresence(frame.operator, frame.shown);
          return;
        }
        if (frame.type !== "escalation.event") return;
        if (frame.event === "opened") unread.add(frame.escalation.id);
        if (frame.event === "resolved") unread.delete(frame.escalation.id);
        renderUnread();
        scheduleRefresh();
      },
    });
  }

  // --- The escalation page -------------------------------------------------------------------

  function startPage(root) {
    const conversationId = Number(root.dataset.conversationId);
    const escalationId = Number(root.dataset.escalationId);
    const list = document.getElementById("parley-messages");
    const empty = document.getElementById("parley-empty");
    const statusBadge = document.getElementById("parley-status");
    const assignee = document.getElementById("parley-assignee");
    const baseTitle = document.title;
    let unseen = 0;

    function lastSeq() {
      const items = list.querySelectorAll("li[data-seq]");
      return items.length ? Number(items[items.length - 1].dataset.seq) : Number(root.dataset.lastSeq || 0);
    }

    function scrollToEnd() {
      list.scrollTop = list.scrollHeight;
    }

    function addMessage(message) {
      if (list.querySelector('li[data-seq="' + message.seq + '"]')) return; // already shown
      const item = document.createElement("li");
      item.className = "parley-message parley-role-" + message.role;
      item.id = "message-" + message.seq;
      item.dataset.seq = String(message.seq);
      const meta = document.createElement("div");
      meta.className = "parley-message-meta";
      const seq = document.createElement("span");
      seq.className = "parley-seq";
      seq.textContent = "#" + message.seq;
      const role = document.createElement("strong");
      role.className = "parley-role";
      role.textContent =
        message.role === "operator" && message.author_name ? message.author_name : ROLE_LABELS[message.role] || message.role;
      const time = document.createElement("time");
      time.dateTime = message.created_at;
      // The server renders times in UTC ("Y-m-d H:i:s"); created_at is UTC ISO 8601.
      time.textContent = String(message.created_at).replace("T", " ").slice(0, 19);
      meta.append(seq, role, time);
      if (message.intent) {
        const intent = document.createElement("span");
        intent.className = "parley-intent";
        intent.textContent = message.intent;
        meta.append(intent);
      }
      const content = document.createElement("div");
      content.className = "parley-message-content";
      content.textContent = message.content; // never innerHTML: customer text is untrusted
      item.append(meta, content);
      let before = null;
      for (const node of list.children) {
        if (Number(node.dataset.seq) > message.seq) {
          before = node;
          break;
        }
      }
      list.insertBefore(item, before);
      empty.hidden = true;
      if (message.role === "customer" && document.visibilityState !== "visible") {
        unseen += 1;
        document.title = "(" + unseen + ") " + baseTitle;
      }
      scrollToEnd();
    }

    function setStatus(status) {
      if (!statusBadge || !STATUS_LABELS[status]) return;
      statusBadge.textContent = STATUS_LABELS[status];
      statusBadge.className = "parley-badge parley-status-" + status;
      if (status === "resolved") {
        for (const field of document.querySelectorAll("#composer textarea, #composer input, #handle input, #handle select, #handle textarea")) {
          field.disabled = true;
        }
      }
    }

    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") {
        unseen = 0;
        document.title = baseTitle;
      }
    });

    liveSocket({
      path: "/ws/conversations/" + conversationId + "/",
      ticketUrl: root.dataset.ticketUrl,
      authExtra: () => ({ after_seq: lastSeq() }),
      onState: (state) => showState(document.getElementById("parley-live"), state),
      onFrame: (frame) => {
        if (frame.type === "message") addMessage(frame.message);
        else if (frame.type === "conversation.status") {
          if (frame.status === "resolved" && frame.escalation_id === escalationId) setStatus("resolved");
        }
      },
    });

    liveSocket({
      path: "/ws/escalations/",
      ticketUrl: root.dataset.ticketUrl,
      onState: () => {},
      onFrame: (frame) => {
        if (frame.type !== "escalation.event" || frame.escalation.id !== escalationId) return;
        if (frame.event === "sla_breached") {
          const badge = document.querySelector("#parley-sla .parley-sla");
          if (badge) badge.dataset.missed = "1";
          tickSla();
        }
        setStatus(frame.escalation.status);
        if (assignee && frame.escalation.assigned_to !== null) {
          const names = JSON.parse(root.dataset.staffNames || "{}");
          assignee.textContent = names[frame.escalation.assigned_to] || "operator #" + frame.escalation.assigned_to;
        }
      },
    });

    // Saved replies: one click puts the text into the composer (at the cursor).
    const composer = document.getElementById("id_message");
    for (const button of document.querySelectorAll(".parley-saved-reply")) {
      button.addEventListener("click", () => {
        if (!composer) return;
        const text = button.dataset.body || "";
        const start = composer.selectionStart ?? composer.value.length;
        const end = composer.selectionEnd ?? composer.value.length;
        composer.value = composer.value.slice(0, start) + text + composer.value.slice(end);
        composer.focus();
        composer.selectionStart = composer.selectionEnd = start + text.length;
      });
    }
    if (composer) {
      composer.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
          event.preventDefault();
          composer.form.requestSubmit();
        }
      });
      if (window.location.hash === "#composer") composer.focus();
    }
    scrollToEnd();
  }

  function start() {
    const bar = document.querySelector('[data-live="list"]');
    if (bar) startList(bar);
    const page = document.querySelector('[data-live="escalation"]');
    if (page) startPage(page);
    tickSla();
    setInterval(tickSla, 15000);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
