// Chatsite's page behaviour. No inline scripts anywhere (the CSP forbids them):
// everything the page does beyond htmx lives here.
(function () {
  "use strict";

  function input() { return document.getElementById("message-input"); }
  function messages() { return document.getElementById("messages"); }

  // Follow the newest text unless the reader has scrolled up to read something.
  var stickToBottom = true;
  function scrollToBottom() {
    var box = messages();
    if (box && stickToBottom) { box.scrollTop = box.scrollHeight; }
  }

  function autosize() {
    var box = input();
    if (!box) { return; }
    box.style.height = "auto";
    box.style.height = Math.min(box.scrollHeight, 240) + "px";
  }

  function focusInput() {
    var box = input();
    if (box && !box.disabled && window.matchMedia("(pointer: fine)").matches) { box.focus(); }
  }

  document.addEventListener("keydown", function (event) {
    var box = input();
    if (event.target === box && event.key === "Enter" && !event.shiftKey) {
      // While an IME is composing (Chinese, Japanese...), Enter picks a candidate.
      if (event.isComposing || event.keyCode === 229) { return; }
      event.preventDefault();
      if (box.value.trim()) { box.form.requestSubmit(); }
      return;
    }
    if (event.key === "Escape") {
      var stop = document.getElementById("stop-form");
      if (stop) { event.preventDefault(); stop.requestSubmit(); }
    }
  });

  document.addEventListener("input", function (event) {
    if (event.target === input()) { autosize(); }
  });

  document.addEventListener("click", function (event) {
    var copy = event.target.closest && event.target.closest("button.copy");
    if (copy) {
      var source = document.querySelector(copy.dataset.copy);
      if (source && navigator.clipboard) {
        navigator.clipboard.writeText(source.innerText).then(function () {
          copy.classList.add("copied");
          window.setTimeout(function () { copy.classList.remove("copied"); }, 1500);
        });
      }
      return;
    }
    var card = event.target.closest && event.target.closest(".role-card");
    if (card) {
      var select = document.getElementById("role-select");
      if (select) { select.value = card.dataset.role; }
      document.querySelectorAll(".role-card").forEach(function (c) {
        c.classList.toggle("selected", c === card);
      });
      focusInput();
    }
  });

  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("select[data-autosubmit]")) {
      event.target.form.submit();
    }
    if (event.target.id === "role-select") {
      document.querySelectorAll(".role-card").forEach(function (c) {
        c.classList.toggle("selected", c.dataset.role === event.target.value);
      });
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var box = messages();
    if (box) {
      box.addEventListener("scroll", function () {
        stickToBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
      });
    }
    scrollToBottom();
    autosize();
    focusInput();
  });

  // Tell the server which conversation is open, so deleting it can leave the page.
  document.addEventListener("htmx:configRequest", function (event) {
    var header = document.getElementById("chat-header");
    if (header && header.dataset.conversation) {
      event.detail.headers["X-Chat-Current"] = header.dataset.conversation;
    }
  });

  document.addEventListener("htmx:wsBeforeSend", function (event) {
    var error = document.getElementById("composer-error");
    if (error) { error.textContent = ""; }
    stickToBottom = true;
    // One send per message: a second Enter before the server answers sends nothing.
    var box = input();
    if (box && event.target.id === "composer-form") {
      if (box.readOnly) { event.preventDefault(); return; }
      box.readOnly = true;
    }
  });

  document.addEventListener("htmx:wsAfterMessage", function () {
    var box = input();
    if (box) { box.readOnly = false; }  // answered: a refused message stays, editable
    scrollToBottom();
    // A new conversation was created by the first message: give it its own address.
    var header = document.getElementById("chat-header");
    if (header && header.dataset.url && window.location.pathname !== header.dataset.url) {
      window.history.replaceState({}, "", header.dataset.url);
      document.title = header.querySelector(".chat-title").textContent + " · Chatsite";
    }
    if (!document.getElementById("stop-form")) { focusInput(); }
    autosize();
    // Close the phone sidebar after a conversation starts.
    var toggle = document.getElementById("sidebar-toggle");
    if (toggle) { toggle.checked = false; }
  });

  function setConnection(state) {
    var badge = document.getElementById("connection-state");
    if (badge) { badge.dataset.state = state; }
  }
  document.addEventListener("htmx:wsOpen", function (event) {
    setConnection("open");
    // After a reconnect (or a reply that ended while the page loaded), ask the server
    // to bring this page up to date. It only re-renders when the page shows "busy".
    var header = document.getElementById("chat-header");
    if (header && header.dataset.conversation) {
      event.detail.socketWrapper.send(JSON.stringify({
        action: "sync",
        conversation: header.dataset.conversation,
        busy: document.getElementById("stop-form") ? "1" : ""
      }));
    }
  });
  document.addEventListener("htmx:wsClose", function () { setConnection("closed"); });
  document.addEventListener("htmx:wsError", function () { setConnection("closed"); });
})();
