// Screen readers hear a reply once, when it is finished: not token by token as it
// streams in (the message list is no live region for that reason). A failed reply
// says so itself (its error has role=alert).
(function () {
  "use strict";

  var streaming = false;

  function announce(text) {
    var announcer = document.getElementById("announcer");
    if (!announcer) { return; }
    announcer.textContent = "";
    window.setTimeout(function () { announcer.textContent = text; }, 50);
  }

  document.addEventListener("htmx:wsBeforeMessage", function () {
    streaming = Boolean(document.getElementById("stop-form"));
  });

  document.addEventListener("htmx:wsAfterMessage", function () {
    if (!streaming || document.getElementById("stop-form")) { return; }  // still being written
    streaming = false;
    var replies = document.querySelectorAll("#messages .msg-assistant");
    var reply = replies.length ? replies[replies.length - 1] : null;
    var body = reply && reply.querySelector(".msg-body");
    var messages = document.getElementById("messages");
    // An error says itself (role=alert); a reply still marked streaming is not finished.
    var label = body && { complete: messages.dataset.replyDone, stopped: messages.dataset.replyStopped,
      interrupted: messages.dataset.replyInterrupted }[reply.dataset.status];
    if (!label) { return; }
    // The text as read, without the code blocks' Copy buttons (chat.js adds them first).
    var text = body.cloneNode(true);
    text.querySelectorAll(".code-copy").forEach(function (button) { button.remove(); });
    announce(label + " " + text.textContent.trim());
  });
})();
