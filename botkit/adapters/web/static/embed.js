// Put the botkit chat on any page:
//   <script src="https://support.example.com/embed.js" data-bot="shop" defer></script>
// It adds a button that opens the chat page in a frame; the chat keeps its own
// styles, storage and security policy, so the host page and the chat cannot meddle.
"use strict";

(function () {
  const script = document.currentScript;
  if (!script || document.getElementById("botkit-chat-frame")) return;
  const base = new URL(".", script.src);
  const label = script.dataset.label || "Chat with us";
  const page = new URL("", base);
  page.searchParams.set("embed", "1");
  if (script.dataset.bot) page.searchParams.set("bot", script.dataset.bot);

  const frame = document.createElement("iframe");
  frame.id = "botkit-chat-frame";
  frame.title = label;
  frame.hidden = true;
  Object.assign(frame.style, {
    position: "fixed",
    right: "1rem",
    bottom: "4.5rem",
    width: "min(24rem, calc(100vw - 2rem))",
    height: "min(36rem, calc(100vh - 6rem))",
    border: "1px solid #8a8a96",
    borderRadius: "0.75rem",
    boxShadow: "0 0.5rem 2rem rgb(0 0 0 / 0.25)",
    background: "#ffffff",
    zIndex: "2147483646",
  });

  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.setAttribute("aria-controls", frame.id);
  button.setAttribute("aria-expanded", "false");
  Object.assign(button.style, {
    position: "fixed",
    right: "1rem",
    bottom: "1rem",
    minHeight: "2.75rem",
    padding: "0.5rem 1rem",
    font: "inherit",
    color: "#ffffff",
    background: "#1f5fbf",
    border: "none",
    borderRadius: "1.5rem",
    cursor: "pointer",
    zIndex: "2147483647",
  });

  function toggle(open) {
    if (open && !frame.src) frame.src = page.href; // load the chat on first open only
    frame.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (open) frame.focus();
  }

  button.addEventListener("click", () => toggle(frame.hidden));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !frame.hidden) {
      toggle(false);
      button.focus();
    }
  });

  const mount = () => document.body.append(frame, button);
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
