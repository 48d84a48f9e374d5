// The botkit chat page. Text from users and the model only ever reaches the page as
// text nodes: the server renders replies' Markdown with raw HTML escaped, and even that
// HTML is rebuilt here from an allow-list of elements instead of being assigned as markup.
// A live event stream brings what the page did not ask for itself: a person's messages
// (labelled with their name), handoff notices, and answers another worker finished.
"use strict";

(function () {
  const params = new URLSearchParams(window.location.search);
  const bot = params.get("bot") || "";
  const storageKey = "botkit.chat.session." + (bot || "default");

  const list = document.getElementById("messages");
  const form = document.getElementById("composer");
  const input = document.getElementById("message");
  const send = document.getElementById("send");
  const title = document.getElementById("chat-title");
  const status = document.getElementById("status");
  const statusText = document.getElementById("status-text");
  const retry = document.getElementById("retry");
  const newChat = document.getElementById("new-chat");

  let sessionId = null;
  let busy = false;
  let live = null; // the session's EventSource
  let liveRetry = null;
  let lastEventId = "";
  let waiting = null; // an answer interrupted after the server took the message
  const answered = new Set(); // message ids whose answers are on the page
  const held = []; // live events that arrived while a reply was streaming in

  const NOTICES = new Set(["joined", "resolved", "timeout"]);

  if (params.get("embed")) document.documentElement.classList.add("embedded");

  // ---- talking to the server -------------------------------------------------------

  class Problem extends Error {
    constructor(message, { status = 0, code = "", retryAfter = null } = {}) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter;
    }
  }

  async function request(path, options = {}) {
    let response;
    try {
      response = await fetch(new URL(path, document.baseURI), options);
    } catch (err) {
      throw new Problem("Cannot reach the chat server. Check your connection and try again.");
    }
    if (!response.ok) throw await problemOf(response);
    return response;
  }

  async function problemOf(response) {
    let code = "";
    let message = "Something went wrong (" + response.status + "). Please try again.";
    try {
      const body = await response.json();
      code = body.error.code;
      message = body.error.message;
    } catch (err) {
      // Not our JSON error shape (a proxy's page, say): keep the generic message.
    }
    const retryAfter = Number(response.headers.get("Retry-After")) || null;
    if (response.status === 429) {
      message = "You are sending messages quickly. Please wait " + (retryAfter || 60) +
        " seconds and try again.";
    }
    return new Problem(message, { status: response.status, code, retryAfter });
  }

  function json(body) {
    return {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    };
  }

  // ---- showing messages ------------------------------------------------------------

  const ALLOWED = new Set([
    "p", "br", "hr", "em", "strong", "s", "del", "code", "pre", "blockquote",
    "ul", "ol", "li", "a", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td",
  ]);
  const DROPPED = new Set(["script", "style", "template", "iframe", "object", "embed"]);

  // The server's rendered Markdown, rebuilt node by node: only allowed elements, only
  // safe link targets, and every piece of text as a text node.
  function safeFragment(html) {
    const parsed = new DOMParser().parseFromString(html, "text/html");
    const fragment = document.createDocumentFragment();
    copyChildren(parsed.body, fragment);
    return fragment;
  }

  function copyChildren(from, to) {
    for (const node of from.childNodes) {
      if (node.nodeType === Node.TEXT_NODE) {
        to.append(document.createTextNode(node.textContent));
      } else if (node.nodeType === Node.ELEMENT_NODE) {
        const tag = node.tagName.toLowerCase();
        if (DROPPED.has(tag)) continue;
        if (!ALLOWED.has(tag)) {
          copyChildren(node, to);
          continue;
        }
        const copy = document.createElement(tag);
        if (tag === "a") {
          const href = node.getAttribute("href") || "";
          if (/^(https?:|mailto:)/i.test(href)) {
            copy.href = href;
            copy.target = "_blank";
            copy.rel = "noopener noreferrer";
          }
        } else if (tag === "ol" && node.hasAttribute("start")) {
          copy.start = Number(node.getAttribute("start")) || 1;
        }
        copyChildren(node, copy);
        to.append(copy);
      }
    }
  }

  function addMessage(role, { text = "", html = null, name = null } = {}) {
    const item = document.createElement("li");
    item.className = "message " + role;
    const who = document.createElement("span");
    if (role === "agent") {
      // A person, not the assistant: their name is shown, and read out.
      who.className = "who";
      who.textContent = name || "Support";
    } else {
      who.className = "visually-hidden";
      who.textContent = role === "user" ? "You: " : "Assistant: ";
    }
    const body = document.createElement("div");
    body.className = "body";
    if (html !== null) body.append(safeFragment(html));
    else body.textContent = text;
    item.append(who, body);
    list.append(item);
    list.scrollTop = list.scrollHeight;
    return { item, body };
  }

  function addNotice(html) {
    const item = document.createElement("li");
    item.className = "notice";
    const body = document.createElement("div");
    body.className = "body";
    body.append(safeFragment(html));
    item.append(body);
    list.append(item);
    list.scrollTop = list.scrollHeight;
  }

  // One stored message, as the session's state or a live event gives it.
  function addStored(message) {
    if (message.role === "user") addMessage("user", { text: message.content });
    else if (message.role === "agent") {
      addMessage("agent", { html: message.html, name: message.name });
    } else if (NOTICES.has(message.kind)) addNotice(message.html);
    else addMessage("assistant", { html: message.html });
    if (message.in_reply_to) answered.add(message.in_reply_to);
  }

  function show(state) {
    sessionId = state.session_id;
    localStorage.setItem(storageKey, sessionId);
    title.textContent = state.title;
    document.title = state.title;
    list.replaceChildren();
    answered.clear();
    held.length = 0;
    waiting = null;
    addMessage("assistant", { html: state.welcome_html });
    for (const message of state.messages) addStored(message);
    listen(state.last_event_id);
  }

  // ---- live events -----------------------------------------------------------------

  function listen(after) {
    if (live) live.close();
    clearTimeout(liveRetry);
    lastEventId = after;
    const path = "chat/sessions/" + encodeURIComponent(sessionId) + "/events";
    const url = new URL(path, document.baseURI);
    url.searchParams.set("after", after);
    const source = new EventSource(url);
    live = source;
    for (const name of ["agent", "notice", "answer"]) {
      source.addEventListener(name, (event) => {
        lastEventId = event.lastEventId || lastEventId;
        const message = JSON.parse(event.data);
        if (busy) held.push(message);
        else receive(message);
      });
    }
    source.addEventListener("error", () => {
      // The browser reconnects by itself after a dropped connection; after a refusal
      // (the server restarting, say) it gives up, so try again a little later.
      if (source.readyState === EventSource.CLOSED && live === source) {
        liveRetry = setTimeout(() => live === source && listen(lastEventId), 5000);
      }
    });
  }

  function receive(message) {
    if (message.role === "assistant" && answered.has(message.in_reply_to)) return; // shown
    if (message.role === "assistant" && !NOTICES.has(message.kind) && waiting) {
      // The answer to the message whose reply was interrupted: it goes where it belongs.
      waiting.item.classList.remove("waiting");
      waiting.body.replaceChildren(safeFragment(message.html));
      waiting = null;
      answered.add(message.in_reply_to);
      setStatus("");
      return;
    }
    addStored(message);
  }

  function release() {
    while (held.length) receive(held.shift());
  }

  function setStatus(message, { canRetry = false } = {}) {
    statusText.textContent = message;
    status.hidden = !message;
    retry.hidden = !canRetry;
  }

  // ---- the conversation --------------------------------------------------------------

  async function start({ fresh = false } = {}) {
    setStatus("");
    try {
      const saved = fresh ? null : localStorage.getItem(storageKey);
      if (saved) {
        try {
          const response = await request("chat/sessions/" + encodeURIComponent(saved));
          show(await response.json());
          return true;
        } catch (err) {
          if (err.status !== 404) throw err;
        }
      }
      const response = await request("chat/sessions", json(bot ? { bot } : {}));
      show(await response.json());
      return true;
    } catch (err) {
      setStatus(err.message, { canRetry: true });
      return false;
    }
  }

  async function ask(text) {
    const question = addMessage("user", { text });
    const answer = addMessage("assistant");
    answer.item.classList.add("streaming");
    list.setAttribute("aria-busy", "true");
    let received = "";
    let accepted = false; // the server has the message: it will be answered
    try {
      const response = await request(
        "chat/sessions/" + encodeURIComponent(sessionId) + "/messages",
        {
          ...json({ message: text, stream: true }),
          headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        },
      );
      accepted = true;
      const done = await readEvents(response, (event, data) => {
        if (event === "delta") {
          received += data.delta;
          answer.body.textContent = received;
          list.scrollTop = list.scrollHeight;
        } else if (event === "done") {
          answered.add(data.message_id);
          // A message for the person handling the conversation has no answer here.
          if (data.kind === "relayed") answer.item.remove();
          else answer.body.replaceChildren(safeFragment(data.html));
        } else if (event === "error") {
          throw new Problem(data.error.message);
        }
      });
      if (!done) throw new Problem("The answer was interrupted.");
      return true;
    } catch (err) {
      if (accepted) {
        // The server kept the message; its answer arrives live when it is ready.
        answer.item.classList.add("waiting");
        answer.body.textContent = received || "…";
        waiting = answer;
        setStatus("The answer was interrupted. It will appear here when it is ready.");
        return false;
      }
      // Nothing arrived: take the message back so it can be sent again, unchanged.
      question.item.remove();
      answer.item.remove();
      input.value = input.value || text;
      if (err.status === 404) {
        await start({ fresh: true });
        setStatus("That conversation had ended, so a new one has started. Please send again.");
      } else {
        setStatus(err.message);
      }
      return false;
    } finally {
      answer.item.classList.remove("streaming");
      list.setAttribute("aria-busy", "false");
    }
  }

  // Server-Sent Events over fetch (EventSource cannot POST); true once `done` arrived.
  async function readEvents(response, handle) {
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let finished = false;
    for (;;) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (err) {
        return finished;
      }
      if (chunk.done) return finished;
      buffer += chunk.value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        let data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trim();
        }
        handle(event, data ? JSON.parse(data) : null);
        if (event === "done") finished = true;
      }
    }
  }

  async function submit() {
    const text = input.value;
    if (busy || !text.trim()) return;
    busy = true;
    send.disabled = true;
    try {
      if (!sessionId && !(await start())) return;
      setStatus("");
      input.value = "";
      await ask(text);
    } finally {
      busy = false;
      send.disabled = false;
      release();
      input.focus();
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });

  retry.addEventListener("click", () => start());

  newChat.addEventListener("click", async () => {
    if (busy) return;
    if (sessionId) {
      try {
        await request("chat/sessions/" + encodeURIComponent(sessionId), { method: "DELETE" });
      } catch (err) {
        // Forgetting it here is enough for this browser; the server expires it later.
      }
    }
    localStorage.removeItem(storageKey);
    sessionId = null;
    if (live) live.close();
    live = null;
    if (await start({ fresh: true })) input.focus();
  });

  start();
})();
