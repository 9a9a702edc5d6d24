// Keyboard shortcuts, the ones ChatGPT users know; Ctrl+/ (or ? outside a text field)
// lists them. Enter, Esc (stop) and Ctrl+K (search) are chat.js's own; this file only
// adds to them, through the page's buttons, so a shortcut does what the click does.
(function () {
  "use strict";

  var mac = /Mac|iPhone|iPad/.test(navigator.platform || "");

  function dialog() { return document.getElementById("shortcuts"); }

  function typing(target) {
    // In a field with text, arrows and Shift select words: they stay the field's.
    var field = target && target.closest && target.closest("input, textarea, select, [contenteditable]");
    return Boolean(field) && (field.tagName === "SELECT" || field.value !== "");
  }

  function inField(target) {
    return Boolean(target && target.closest && target.closest("input, textarea, select, [contenteditable]"));
  }

  function lastReply() {
    var replies = document.querySelectorAll("#messages .msg-assistant");
    return replies.length ? replies[replies.length - 1] : null;
  }

  function press(button) {
    if (button && !button.disabled) { button.click(); }
  }

  function take(event) {
    // The key is this shortcut's alone: chat.js's own Esc (stop, clear the search) must not also run.
    event.preventDefault();
    event.stopPropagation();
  }

  function show() {
    var shown = dialog();
    if (shown && !shown.open) { shown.showModal(); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    if (!mac) { return; }
    document.querySelectorAll("#shortcuts kbd.mod").forEach(function (key) { key.textContent = "⌘"; });
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest(".shortcuts-open")) { show(); }
  });

  // Capture: before chat.js's Esc stops a reply, a shortcut here may have taken the key.
  window.addEventListener("keydown", function (event) {
    if (event.isComposing || event.keyCode === 229) { return; }  // an IME picks a word
    var shown = dialog();
    if (!shown) { return; }
    var mod = mac ? event.metaKey : event.ctrlKey;
    var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (shown.open) {
      if (key === "Escape") { take(event); shown.close(); }  // closes; never stops a reply
      return;
    }
    if ((mod && !event.shiftKey && key === "/") || (key === "?" && !mod && !inField(event.target))) {
      take(event);
      show();
    } else if (mod && event.shiftKey && key === "o") {
      take(event);
      press(document.querySelector(".new-chat"));
    } else if (event.shiftKey && !mod && key === "Escape") {
      take(event);
      var box = document.getElementById("message-input");
      if (box && !box.disabled) { box.focus(); }
    } else if (mod && event.shiftKey && key === "c") {
      var reply = lastReply();
      if (reply) { take(event); press(reply.querySelector("button.copy")); }
    } else if (mod && event.shiftKey && (key === "ArrowLeft" || key === "ArrowRight") && !typing(event.target)) {
      var versions = lastReply() && lastReply().querySelectorAll(".branches button");
      if (versions && versions.length === 2) {
        take(event);
        press(versions[key === "ArrowLeft" ? 0 : 1]);
      }
    }
  }, true);
})();
