/*
 * Parley's chat page: sign in, pick or start a conversation, chat with live replies.
 *
 * - Tokens live in sessionStorage (this tab only) and are refreshed before they expire; a fresh
 *   access token is also sent over the open websocket so the socket survives the refresh.
 * - Every message is identified by its `seq`: history, websocket replay and live events are
 *   merged by seq, so nothing shows twice and out-of-order arrivals land in place.
 * - After a network drop the socket reconnects with `after_seq` (the highest seq up to which
 *   nothing is missing) and the server replays what was missed.
 * - Message text is only ever set with textContent.
 */
(function () {
  "use strict";

  const API = "/api/v1";
  const SESSION_KEY = "parley.session";
  // Conversations rated (or whose offer was dismissed) in this tab: kept beside the session so
  // a reload does not ask again; forgotten with the session at sign-out.
  const RATED_KEY = "parley.rated";
  const PING_EVERY_MS = 25000;
  const PONG_TIMEOUT_MS = 10000;
  const MAX_BACKOFF_MS = 30000;
  const ROLE_LABELS = { customer: "You", agent: "Assistant", operator: "Operator", system: "Notice" };
  // The conversation list does not know whether an operator has joined; the open
  // conversation's badge does (operatorPresent).
  const STATUS_LABELS = { active: "Active", escalated: "With support", resolved: "Resolved" };
  // The fixed part of the notices saying an operator joined or took over (from the server,
  // which writes them: templates/chat/index.html).
  const OPERATOR_NOTICES = JSON.parse(document.body.dataset.operatorNotices || "[]");

  const $ = (id) => document.getElementById(id);
  const el = {
    account: $("account"),
    accountName: $("account-name"),
    signOut: $("sign-out"),
    authView: $("auth-view"),
    authError: $("auth-error"),
    signInForm: $("sign-in-form"),
    signInUsername: $("sign-in-username"),
    signInPassword: $("sign-in-password"),
    showRegister: $("show-register"),
    registerForm: $("register-form"),
    chatView: $("chat-view"),
    newConversation: $("new-conversation"),
    conversationList: $("conversation-list"),
    conversationsEmpty: $("conversations-empty"),
    title: $("conversation-title"),
    status: $("conversation-status"),
    connection: $("connection-state"),
    notice: $("notice"),
    log: $("message-log"),
    chatError: $("chat-error"),
    composer: $("composer"),
    input: $("message-input"),
    send: $("send-button"),
    rating: $("rating"),
    ratingForm: $("rating-form"),
    ratingComment: $("rating-comment"),
    ratingError: $("rating-error"),
    ratingThanks: $("rating-thanks"),
    ratingDismiss: $("rating-dismiss"),
  };

  const state = {
    session: null, // {access, refresh, expiresAt}
    me: null, // {id, username, ...}
    conversations: new Map(), // id -> conversation
    conversationId: null,
    seqs: new Set(),
    resumeSeq: 0, // every seq <= this one is shown (or was never loaded: older history)
    socket: null,
    socketReady: false,
    reconnectAttempts: 0,
    reconnectTimer: null,
    pingTimer: null,
    pongTimer: null,
    refreshTimer: null,
    refreshing: null,
    authRetried: false,
    pending: new Map(), // client_msg_id -> {text, node, conversationId, viaRest}
    creating: false, // a first message is starting a new conversation over REST
    rated: loadRated(), // conversation ids rated (or the offer dismissed) in this tab
    status: null, // the open conversation's status (the badge)
    pinned: true, // the log is scrolled to its end (and stays there when resized)
  };

  class ApiError extends Error {
    constructor(status, detail, retryAfter) {
      super(detail);
      this.status = status;
      this.retryAfter = retryAfter;
    }
  }

  // --- Session ------------------------------------------------------------------------------

  function saveSession(tokens) {
    state.session = {
      access: tokens.access_token,
      refresh: tokens.refresh_token,
      expiresAt: Date.now() + tokens.expires_in * 1000,
    };
    try {
      sessionStorage.setItem(SESSION_KEY, JSON.stringify(state.session));
    } catch (e) {
      /* storage disabled: keep the session in memory only */
    }
    scheduleRefresh();
  }

  function loadSession() {
    try {
      const raw = sessionStorage.getItem(SESSION_KEY);
      const session = raw ? JSON.parse(raw) : null;
      if (session && session.access && session.refresh && session.expiresAt) {
        state.session = session;
      }
    } catch (e) {
      state.session = null;
    }
  }

  function clearSession() {
    state.session = null;
    state.me = null;
    state.rated = new Set();
    clearTimeout(state.refreshTimer);
    try {
      sessionStorage.removeItem(SESSION_KEY);
      sessionStorage.removeItem(RATED_KEY);
    } catch (e) {
      /* ignore */
    }
  }

  function loadRated() {
    try {
      const ids = JSON.parse(sessionStorage.getItem(RATED_KEY) || "[]");
      return new Set(Array.isArray(ids) ? ids.filter(Number.isInteger) : []);
    } catch (e) {
      return new Set();
    }
  }

  function saveRated() {
    try {
      sessionStorage.setItem(RATED_KEY, JSON.stringify([...state.rated]));
    } catch (e) {
      /* storage disabled: remembered in memory only */
    }
  }

  function rememberRated(conversationId) {
    state.rated.add(conversationId);
    saveRated();
  }

  function forgetRated(conversationId) {
    if (state.rated.delete(conversationId)) saveRated();
  }

  function scheduleRefresh() {
    clearTimeout(state.refreshTimer);
    if (!state.session) return;
    const left = state.session.expiresAt - Date.now();
    // Refresh a minute early (or at 80 % of a short lifetime).
    const delay = Math.max(1000, left - Math.min(60000, left * 0.2));
    state.refreshTimer = setTimeout(() => {
      refreshTokens().catch(() => {});
    }, delay);
  }

  function refreshTokens() {
    if (state.refreshing) return state.refreshing;
    const session = state.session;
    if (!session) return Promise.resolve(false);
    state.refreshing = (async () => {
      try {
        const response = await fetch(API + "/auth/refresh", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ refresh_token: session.refresh }),
          credentials: "omit",
        });
        if (!response.ok) return false;
        saveSession(await response.json());
        // Hand the open socket the new token: it would otherwise close when the old one expires.
        if (state.socket && state.socketReady) {
          sendFrame({ type: "auth", token: state.session.access });
        }
        return true;
      } catch (e) {
        return false; // offline: the next attempt happens on reconnect or the next request
      } finally {
        state.refreshing = null;
      }
    })();
    return state.refreshing;
  }

  async function freshAccessToken() {
    if (!state.session) throw new ApiError(401, "Please sign in.");
    if (state.session.expiresAt - Date.now() < 15000) {
      if (!(await refreshTokens())) {
        sessionExpired();
        throw new ApiError(401, "Your session has expired. Please sign in again.");
      }
    }
    return state.session.access;
  }

  // --- HTTP ---------------------------------------------------------------------------------

  function detailText(body, fallback) {
    if (!body || body.detail === undefined) return fallback;
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) {
      return body.detail.map((item) => item && item.msg).filter(Boolean).join(" ") || fallback;
    }
    return fallback;
  }

  async function api(path, { method = "GET", body, auth = true, headers = {}, retried = false } = {}) {
    const allHeaders = { Accept: "application/json", ...headers };
    if (body !== undefined) allHeaders["Content-Type"] = "application/json";
    if (auth) allHeaders.Authorization = "Bearer " + (await freshAccessToken());
    let response;
    try {
      response = await fetch(API + path, {
        method,
        headers: allHeaders,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
      });
    } catch (e) {
      throw new ApiError(0, "Network problem: check your connection and try again.");
    }
    if (response.status === 401 && auth && !retried) {
      if (await refreshTokens()) {
        return api(path, { method, body, auth, headers, retried: true });
      }
      sessionExpired();
    }
    let data = null;
    if (response.status !== 204) {
      try {
        data = await response.json();
      } catch (e) {
        data = null;
      }
    }
    if (!response.ok) {
      throw new ApiError(
        response.status,
        detailText(data, "Something went wrong (" + response.status + ")."),
        response.headers.get("Retry-After"),
      );
    }
    return data;
  }

  function newClientId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // --- Views --------------------------------------------------------------------------------

  function showError(node, text) {
    node.textContent = text;
    node.hidden = !text;
  }

  function showAuth(message) {
    closeSocket();
    el.chatView.hidden = true;
    el.account.hidden = true;
    el.authView.hidden = false;
    showError(el.authError, message || "");
    el.signInUsername.focus();
  }

  async function showChat() {
    el.authView.hidden = true;
    el.account.hidden = false;
    el.accountName.textContent = state.me.username;
    el.chatView.hidden = false;
    await loadConversations();
    const newest = state.conversations.size ? state.conversations.keys().next().value : null;
    if (newest !== null) {
      await openConversation(newest, { focus: "input" });
    } else {
      startNewConversation();
    }
  }

  function sessionExpired() {
    clearSession();
    showAuth("Your session has expired. Please sign in again.");
  }

  function setConnection(text) {
    el.connection.textContent = text;
  }

  function setNotice(text) {
    el.notice.textContent = text;
    el.notice.hidden = !text;
  }

  /* Is an operator in the conversation now? Since the agent last spoke (every hand-off starts
     with the agent's own reply), an operator wrote, or a notice said one joined. */
  function operatorPresent() {
    const items = el.log.querySelectorAll("li[data-seq]");
    for (let i = items.length - 1; i >= 0; i -= 1) {
      const item = items[i];
      if (item.dataset.role === "agent") return false;
      if (item.dataset.role === "operator" || item.dataset.operatorNotice === "1") return true;
    }
    return false;
  }

  function badgeText(status) {
    if (status === "escalated") return operatorPresent() ? "With an operator" : "Waiting for an operator";
    return STATUS_LABELS[status] || status || "";
  }

  function setStatus(status) {
    state.status = status;
    el.status.hidden = !status;
    el.status.textContent = badgeText(status);
    el.status.className = "badge" + (status ? " badge--" + status : "");
    const known = state.conversations.get(state.conversationId);
    if (known && status) {
      known.status = status;
      renderConversationList();
    }
  }

  // --- Conversations ------------------------------------------------------------------------

  async function loadConversations() {
    const page = await api("/conversations?limit=50");
    state.conversations = new Map(page.items.map((c) => [c.id, c]));
    renderConversationList();
  }

  function renderConversationList() {
    el.conversationList.replaceChildren();
    el.conversationsEmpty.hidden = state.conversations.size > 0;
    for (const conversation of state.conversations.values()) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "conversation-link";
      button.dataset.conversationId = String(conversation.id);
      if (conversation.id === state.conversationId) button.setAttribute("aria-current", "true");
      const title = document.createElement("span");
      title.textContent = "Conversation #" + conversation.id;
      const meta = document.createElement("span");
      meta.className = "conversation-link__meta";
      meta.textContent =
        (STATUS_LABELS[conversation.status] || conversation.status) +
        " · " +
        new Date(conversation.updated_at).toLocaleString();
      button.append(title, meta);
      button.addEventListener("click", () => {
        openConversation(conversation.id, { focus: "input" }).catch(reportChatError);
      });
      item.append(button);
      el.conversationList.append(item);
    }
  }

  // --- Rating (CSAT) -------------------------------------------------------------------------

  function offerRating() {
    const conversationId = state.conversationId;
    if (conversationId === null || state.rated.has(conversationId)) return;
    el.ratingForm.reset();
    el.ratingForm.hidden = false;
    el.ratingThanks.hidden = true;
    showError(el.ratingError, "");
    el.rating.hidden = false;
    // The panel takes room from the log: keep the closing line in view.
    requestAnimationFrame(scrollToEnd);
  }

  function hideRating() {
    el.rating.hidden = true;
  }

  el.ratingForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const conversationId = state.conversationId;
    const picked = el.ratingForm.querySelector("input[name=score]:checked");
    if (!picked) {
      showError(el.ratingError, "Pick a score from 1 to 5.");
      return;
    }
    const comment = el.ratingComment.value.trim();
    if (comment.length > 1000) {
      showError(el.ratingError, "Comments are limited to 1000 characters.");
      return;
    }
    showError(el.ratingError, "");
    try {
      await api("/conversations/" + conversationId + "/rating", {
        method: "POST",
        body: { score: Number(picked.value), comment },
      });
    } catch (error) {
      if (error.status !== 409) {
        showError(el.ratingError, error.message);
        return;
      }
      // Already rated (another tab): nothing more to ask.
    }
    rememberRated(conversationId);
    el.ratingForm.hidden = true;
    el.ratingThanks.hidden = false;
  });

  el.ratingDismiss.addEventListener("click", () => {
    rememberRated(state.conversationId);
    hideRating();
  });

  function resetLog() {
    // Sends still pending for the conversation being left either reach the server (and show
    // in its history) or not; their bubbles do not follow the user to another conversation.
    state.pending.clear();
    el.log.replaceChildren();
    state.seqs = new Set();
    state.resumeSeq = 0;
    setNotice("");
    hideRating();
    showError(el.chatError, "");
  }

  function startNewConversation() {
    closeSocket();
    state.conversationId = null;
    resetLog();
    el.title.textContent = "New conversation";
    setStatus(null);
    setConnection("");
    renderConversationList();
    el.input.focus();
  }

  async function openConversation(conversationId, { focus } = {}) {
    closeSocket();
    state.conversationId = conversationId;
    resetLog();
    el.title.textContent = "Conversation #" + conversationId;
    const known = state.conversations.get(conversationId);
    setStatus(known ? known.status : null);
    renderConversationList();
    const history = await api("/conversations/" + conversationId + "/history?limit=100");
    if (state.conversationId !== conversationId) return; // the user moved on meanwhile
    if (history.messages.length) {
      // Older history (has_more) is not shown; resume from the first loaded message.
      state.resumeSeq = history.messages[0].seq - 1;
    }
    history.messages.forEach(addMessage);
    scrollToEnd();
    if (known && known.status === "resolved") offerRating();
    connectSocket();
    if (focus === "input") el.input.focus();
  }

  async function catchUp() {
    // Fetch what the socket has not delivered (used after a REST send without a socket).
    const conversationId = state.conversationId;
    if (conversationId === null) return;
    const history = await api(
      "/conversations/" + conversationId + "/history?limit=1000&after_seq=" + state.resumeSeq,
    );
    if (state.conversationId === conversationId) history.messages.forEach(addMessage);
  }

  // --- Messages -----------------------------------------------------------------------------

  function addMessage(message) {
    if (state.seqs.has(message.seq)) return; // already shown (replay and live overlap)
    state.seqs.add(message.seq);
    while (state.seqs.has(state.resumeSeq + 1)) state.resumeSeq += 1;

    const item = document.createElement("li");
    item.className = "message message--" + message.role;
    item.dataset.seq = String(message.seq);
    item.dataset.role = message.role;
    if (message.role === "system" && OPERATOR_NOTICES.some((m) => String(message.content).includes(m))) {
      item.dataset.operatorNotice = "1";
    }

    const meta = document.createElement("p");
    meta.className = "message__meta";
    const author = document.createElement("span");
    author.className = "message__author";
    // Operators sign with their display name; system messages are event lines.
    author.textContent =
      message.role === "operator" && message.author_name
        ? message.author_name
        : ROLE_LABELS[message.role] || message.role;
    const time = document.createElement("time");
    time.dateTime = message.created_at;
    time.textContent = " · " + new Date(message.created_at).toLocaleTimeString([], {
      hour: "2-digit",
      minute: "2-digit",
    });
    meta.append(author, time);

    const content = document.createElement("p");
    content.className = "message__content";
    content.textContent = message.content; // text only: message content is untrusted
    item.append(meta, content);

    // Keep the log in seq order even when events arrive out of order; pending sends stay last.
    let before = null;
    for (const node of el.log.children) {
      if (node.dataset.seq === undefined || Number(node.dataset.seq) > message.seq) {
        before = node;
        break;
      }
    }
    el.log.insertBefore(item, before);
    scrollToEnd();
    if (state.status === "escalated") el.status.textContent = badgeText(state.status);
  }

  function scrollToEnd() {
    el.log.scrollTop = el.log.scrollHeight;
    state.pinned = true;
  }

  // The log keeps its last line in view when the panel around it changes size (the rating
  // panel opening under it, an error line, the window) as long as the reader was at the end.
  el.log.addEventListener("scroll", () => {
    state.pinned = el.log.scrollHeight - el.log.scrollTop - el.log.clientHeight < 24;
  });
  if (window.ResizeObserver) {
    new ResizeObserver(() => {
      if (state.pinned) el.log.scrollTop = el.log.scrollHeight;
    }).observe(el.log);
  }

  function addPending(clientMsgId, text) {
    const item = document.createElement("li");
    item.className = "message message--customer message--pending";
    item.dataset.clientMsgId = clientMsgId;
    const meta = document.createElement("p");
    meta.className = "message__meta";
    const author = document.createElement("span");
    author.className = "message__author";
    author.textContent = ROLE_LABELS.customer;
    const stateText = document.createElement("span");
    stateText.className = "message__state";
    stateText.textContent = " · sending…";
    meta.append(author, stateText);
    const content = document.createElement("p");
    content.className = "message__content";
    content.textContent = text;
    item.append(meta, content);
    el.log.append(item);
    scrollToEnd();
    return item;
  }

  function settlePending(clientMsgId) {
    const pending = state.pending.get(clientMsgId);
    if (!pending) return;
    state.pending.delete(clientMsgId);
    pending.node.remove();
  }

  function failPending(clientMsgId, detail) {
    const pending = state.pending.get(clientMsgId);
    if (!pending) {
      showError(el.chatError, detail);
      return;
    }
    const node = pending.node;
    node.classList.add("message--failed");
    node.querySelector(".message__state").textContent = " · not sent";
    let problem = node.querySelector(".message__problem");
    if (!problem) {
      problem = document.createElement("p");
      problem.className = "message__problem";
      node.append(problem);
      const retry = document.createElement("button");
      retry.type = "button";
      retry.className = "button button--link";
      retry.textContent = "Retry";
      retry.addEventListener("click", () => {
        node.classList.remove("message--failed");
        node.querySelector(".message__state").textContent = " · sending…";
        problem.textContent = "";
        deliver(clientMsgId);
      });
      node.append(retry);
    }
    problem.textContent = detail;
    showError(el.chatError, detail);
  }

  function submitMessage(text) {
    const clientMsgId = newClientId();
    const node = addPending(clientMsgId, text);
    state.pending.set(clientMsgId, {
      text,
      node,
      conversationId: state.conversationId,
      viaRest: false,
    });
    deliver(clientMsgId);
  }

  function deliver(clientMsgId) {
    const pending = state.pending.get(clientMsgId);
    if (!pending) return;
    showError(el.chatError, "");
    if (pending.conversationId !== null && state.socket && state.socketReady &&
        pending.conversationId === state.conversationId) {
      // Over the socket: the reply and our message come back as `message` events, the ack
      // settles the pending bubble. Retries reuse the client_msg_id (idempotent).
      sendFrame({ type: "message", content: pending.text, client_msg_id: clientMsgId });
      return;
    }
    if (pending.conversationId !== null && state.socket && !state.socketReady) {
      return; // connecting: sent as soon as auth.ok arrives (flushPending)
    }
    pending.viaRest = true;
    if (pending.conversationId === null) setCreating(true);
    sendOverRest(clientMsgId, pending)
      .catch((error) => failPending(clientMsgId, error.message))
      .finally(() => {
        pending.viaRest = false;
        if (pending.conversationId === null) setCreating(false);
      });
  }

  function setCreating(creating) {
    // Until the first message has created the conversation, a second one would start another.
    state.creating = creating;
    el.send.disabled = creating;
  }

  async function sendOverRest(clientMsgId, pending) {
    const body = await api("/messages/process", {
      method: "POST",
      headers: { "Idempotency-Key": clientMsgId },
      body: {
        message: pending.text,
        customer_id: state.me.id,
        conversation_id: pending.conversationId,
      },
    });
    settlePending(clientMsgId);
    if (pending.conversationId === null) {
      // A new conversation: list it, open it (history has both messages), subscribe.
      const now = new Date().toISOString();
      state.conversations = new Map([
        [body.conversation_id, {
          id: body.conversation_id,
          status: body.status === "escalated" ? "escalated" : "active",
          updated_at: now,
          created_at: now,
        }],
        ...state.conversations,
      ]);
      await openConversation(body.conversation_id);
      el.input.focus();
    } else {
      await catchUp();
    }
  }

  function flushPending() {
    for (const [clientMsgId, pending] of state.pending) {
      if (pending.conversationId === state.conversationId && !pending.viaRest &&
          !pending.node.classList.contains("message--failed")) {
        // Unacknowledged sends are resent after a reconnect; the server replays the ones it
        // already processed instead of writing them twice.
        deliver(clientMsgId);
      }
    }
  }

  // --- Websocket ----------------------------------------------------------------------------

  function sendFrame(frame) {
    if (state.socket && state.socket.readyState === WebSocket.OPEN) {
      state.socket.send(JSON.stringify(frame));
    }
  }

  async function connectSocket() {
    const conversationId = state.conversationId;
    if (conversationId === null || !state.session) return;
    clearTimeout(state.reconnectTimer);
    let token;
    try {
      token = await freshAccessToken();
    } catch (e) {
      return;
    }
    if (state.conversationId !== conversationId || state.socket) return;
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(
      scheme + "//" + window.location.host + "/ws/conversations/" + conversationId + "/",
    );
    state.socket = socket;
    state.socketReady = false;
    setConnection(state.reconnectAttempts ? "Reconnecting…" : "Connecting…");
    socket.addEventListener("open", () => {
      // First frame: the token (never in the URL) and where to resume.
      socket.send(JSON.stringify({ type: "auth", token, after_seq: state.resumeSeq }));
    });
    socket.addEventListener("message", (event) => {
      if (socket !== state.socket) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      handleFrame(frame);
    });
    socket.addEventListener("close", (event) => onSocketClose(socket, event));
  }

  function handleFrame(frame) {
    switch (frame.type) {
      case "auth.ok":
        if (!state.socketReady) {
          state.socketReady = true;
          state.reconnectAttempts = 0;
          state.authRetried = false;
          setConnection("Live");
          startPings();
          flushPending();
        }
        break;
      case "message":
        addMessage(frame.message);
        break;
      case "message.ack":
        settlePending(frame.client_msg_id);
        break;
      case "conversation.status":
        // The transcript already says it (the agent's hand-off reply, "Olivia joined",
        // "Olivia marked this conversation as resolved"): the header badge follows the status,
        // and a resolution asks for a rating; no banner repeats the news.
        setStatus(frame.status);
        if (frame.status === "resolved") {
          offerRating();
        } else {
          // Back with the agent or escalated again: the next resolution closes a new
          // escalation, and that one is the customer's to rate.
          forgetRated(state.conversationId);
          hideRating();
        }
        break;
      case "error":
        if (frame.client_msg_id && frame.status === 409) {
          // The first attempt is still being processed: ask again shortly.
          setTimeout(() => deliver(frame.client_msg_id), 1000);
        } else if (frame.client_msg_id) {
          failPending(frame.client_msg_id, frame.detail);
        } else {
          showError(el.chatError, frame.detail);
        }
        break;
      case "pong":
        clearTimeout(state.pongTimer);
        break;
      default:
        break; // newer server features this page does not know yet
    }
  }

  function startPings() {
    stopPings();
    state.pingTimer = setInterval(() => {
      sendFrame({ type: "ping" });
      clearTimeout(state.pongTimer);
      state.pongTimer = setTimeout(() => {
        // No answer: the connection is dead even if the browser has not noticed yet.
        if (state.socket) state.socket.close(4000, "ping timeout");
      }, PONG_TIMEOUT_MS);
    }, PING_EVERY_MS);
  }

  function stopPings() {
    clearInterval(state.pingTimer);
    clearTimeout(state.pongTimer);
  }

  function closeSocket() {
    clearTimeout(state.reconnectTimer);
    stopPings();
    const socket = state.socket;
    state.socket = null;
    state.socketReady = false;
    state.reconnectAttempts = 0;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, "closed by the page");
  }

  async function onSocketClose(socket, event) {
    if (socket !== state.socket) return; // replaced or closed on purpose
    state.socket = null;
    state.socketReady = false;
    stopPings();
    if (event.code === 4401) {
      // Token expired or revoked: one refresh, then reconnect; otherwise sign in again.
      if (!state.authRetried && (await refreshTokens())) {
        state.authRetried = true;
        connectSocket();
      } else {
        sessionExpired();
      }
      return;
    }
    if (event.code === 4403 || event.code === 4404) {
      setConnection("");
      showError(el.chatError, "This conversation is not available.");
      return;
    }
    scheduleReconnect();
  }

  function scheduleReconnect() {
    clearTimeout(state.reconnectTimer);
    if (state.conversationId === null || !state.session) return;
    const attempt = state.reconnectAttempts;
    state.reconnectAttempts += 1;
    const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** attempt);
    const delay = attempt === 0 ? 250 : base / 2 + Math.random() * (base / 2);
    setConnection("Connection lost. Reconnecting…");
    state.reconnectTimer = setTimeout(connectSocket, delay);
  }

  window.addEventListener("online", () => {
    if (!state.socket && state.conversationId !== null && state.session) {
      state.reconnectAttempts = 0;
      connectSocket();
    }
  });

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && !state.socket &&
        state.conversationId !== null && state.session) {
      connectSocket();
    }
  });

  function reportChatError(error) {
    showError(el.chatError, error && error.message ? error.message : "Something went wrong.");
  }

  // --- Event wiring -------------------------------------------------------------------------

  el.signInForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const username = el.signInUsername.value.trim();
    const password = el.signInPassword.value;
    if (!username || !password) {
      showError(el.authError, "Enter your username and password.");
      return;
    }
    await signIn(username, password);
  });

  async function signIn(username, password) {
    showError(el.authError, "");
    try {
      const tokens = await api("/auth/token", {
        method: "POST",
        auth: false,
        body: { username, password },
      });
      saveSession(tokens);
      state.me = await api("/auth/me");
      el.signInPassword.value = "";
      await showChat();
    } catch (error) {
      clearSession();
      showError(el.authError, error.status === 401 ? "Wrong username or password." : error.message);
      el.signInUsername.focus();
    }
  }

  el.showRegister.addEventListener("click", () => {
    const opening = el.registerForm.hidden;
    el.registerForm.hidden = !opening;
    el.showRegister.setAttribute("aria-expanded", String(opening));
    if (opening) $("register-username").focus();
  });

  el.registerForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const username = $("register-username").value.trim();
    const email = $("register-email").value.trim();
    const password = $("register-password").value;
    if (!username || !email || !password) {
      showError(el.authError, "Fill in username, email and password.");
      return;
    }
    showError(el.authError, "");
    try {
      await api("/auth/register", { method: "POST", auth: false, body: { username, email, password } });
    } catch (error) {
      showError(el.authError, error.message);
      return;
    }
    el.registerForm.hidden = true;
    el.showRegister.setAttribute("aria-expanded", "false");
    await signIn(username, password);
  });

  el.signOut.addEventListener("click", async () => {
    const session = state.session;
    closeSocket();
    for (const id of [...state.pending.keys()]) settlePending(id);
    if (session) {
      // Best effort: revoke the access token and the refresh token on the server.
      fetch(API + "/auth/revoke", {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: "Bearer " + session.access },
        body: JSON.stringify({ refresh_token: session.refresh }),
        credentials: "omit",
      }).catch(() => {});
    }
    clearSession();
    state.conversationId = null;
    state.conversations = new Map();
    showAuth("");
  });

  el.newConversation.addEventListener("click", startNewConversation);

  el.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = el.input.value.trim();
    if (!text) {
      showError(el.chatError, "Write a message first.");
      el.input.focus();
      return;
    }
    if (text.length > 4000) {
      showError(el.chatError, "Messages are limited to 4000 characters.");
      return;
    }
    if (state.creating) {
      showError(el.chatError, "One moment: your conversation is being created.");
      return;
    }
    el.input.value = "";
    submitMessage(text);
    el.input.focus();
  });

  el.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      el.composer.requestSubmit();
    }
  });

  // --- Start --------------------------------------------------------------------------------

  async function start() {
    loadSession();
    if (!state.session) {
      showAuth("");
      return;
    }
    try {
      if (state.session.expiresAt - Date.now() < 15000 && !(await refreshTokens())) {
        sessionExpired();
        return;
      }
      scheduleRefresh();
      state.me = await api("/auth/me");
      await showChat();
    } catch (error) {
      if (state.session) showAuth(error.message);
    }
  }

  start();
})();
