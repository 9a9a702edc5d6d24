// Chatsite's page behaviour. No inline scripts anywhere (the CSP forbids them):
// everything the page does beyond htmx lives here.
(function () {
  "use strict";

  // The sidebar's "Today" is the user's today: the server reads the browser's time zone
  // from this cookie (chatsite.timezones) on the next request.
  (function rememberTimeZone() {
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return; }
    // IANA names ("Asia/Shanghai") are plain cookie characters: stored as they are.
    if (/^[A-Za-z0-9_+\/-]{1,64}$/.test(zone) && !(" " + document.cookie + ";").includes(" tz=" + zone + ";")) {
      document.cookie = "tz=" + zone + "; path=/; max-age=31536000; samesite=lax";
    }
  })();

  function input() { return document.getElementById("message-input"); }
  function messages() { return document.getElementById("messages"); }

  // Follow the newest text unless the reader has scrolled up to read something.
  var stickToBottom = true;
  // Earlier messages loading in above (scrolled up to): what the reader was looking at
  // stays where it was, by its distance from the end, until they have settled.
  var keepFromBottom = null;
  function scrollToBottom() {
    var box = messages();
    if (!box) { return; }
    if (keepFromBottom !== null) { box.scrollTop = box.scrollHeight - keepFromBottom; }
    else if (stickToBottom) { box.scrollTop = box.scrollHeight; }
  }
  document.addEventListener("htmx:beforeSwap", function (event) {
    var box = messages();
    var target = event.detail.target;
    if (box && event.detail.shouldSwap && target && target.classList &&
        target.classList.contains("older-messages") && box.contains(target)) {
      keepFromBottom = box.scrollHeight - box.scrollTop;
    }
  });
  // Nothing swapped in (an error, the conversation deleted meanwhile): nothing to keep.
  document.addEventListener("htmx:afterRequest", function (event) {
    if (!event.detail.successful) { keepFromBottom = null; }
  });

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
      if (box.value.trim() || attachedCount() > 0) { box.form.requestSubmit(); }
      return;
    }
    if (event.key === "Escape") {
      if (event.defaultPrevented || menuOpen()) { return; }  // Esc closes the open menu first
      // In the search box or its results, Esc clears the search (below), never stops a reply.
      if (event.target.closest && event.target.closest(".sidebar-search, #search-results")) { return; }
      var edit = event.target.closest && event.target.closest(".msg-edit[open]");
      if (edit) { event.preventDefault(); closeEdit(edit); return; }
      if (drawerOpen()) { event.preventDefault(); setDrawer(false, true); return; }
      var stop = document.getElementById("stop-form");
      if (stop) { event.preventDefault(); stop.requestSubmit(); }
    }
  });

  // --- Copy: a whole message, or one code block, with visible feedback ---------------
  function announce(text) {
    var announcer = document.getElementById("announcer");
    if (announcer) {
      announcer.textContent = "";
      window.setTimeout(function () { announcer.textContent = text; }, 50);
    }
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    // Plain http (no Clipboard API): copy through a hidden selection.
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      var ok = document.execCommand("copy");
      area.remove();
      if (ok) { resolve(); } else { reject(new Error("copy refused")); }
    });
  }

  function showCopied(button, label) {
    if (!button.dataset.label) { button.dataset.label = button.textContent; }
    button.textContent = label;
    announce(label);
    window.clearTimeout(Number(button.dataset.timer || 0));
    button.dataset.timer = String(window.setTimeout(function () {
      button.textContent = button.dataset.label;
    }, 2000));
  }

  function copiedLabel() {
    var box = messages();
    return (box && box.dataset.copied) || "Copied";
  }

  // A code block's own copy button, put before each <pre> of a finished message. The
  // message body is model output: the button is the page's, made here, never sent.
  function addCodeButtons() {
    var box = messages();
    if (!box) { return; }
    box.querySelectorAll(".msg:not(.status-streaming) .msg-body pre").forEach(function (pre) {
      var before = pre.previousElementSibling;
      if (before && before.classList.contains("code-copy")) { return; }
      var button = document.createElement("button");
      button.type = "button";
      button.className = "code-copy";
      button.textContent = box.dataset.copyCode || "Copy code";
      pre.parentNode.insertBefore(button, pre);
    });
  }

  function messageText(body) {
    // innerText keeps the paragraphs; the code blocks' buttons are hidden while it is read.
    var article = body.closest(".msg");
    if (article) { article.classList.add("copying"); }
    var text = body.innerText;
    if (article) { article.classList.remove("copying"); }
    return text;
  }

  // --- Editing the last message: Cancel and Esc close the box, the text is put back ---
  function closeEdit(details) {
    var box = details.querySelector("textarea");
    if (box) { box.value = box.defaultValue; }
    details.open = false;
    var summary = details.querySelector("summary");
    if (summary) { summary.focus(); }
  }

  // --- The phone drawer: a real button opens it; closed, it is out of the Tab order ----
  var phone = window.matchMedia("(max-width: 760px)");
  function drawerToggle() { return document.getElementById("sidebar-toggle"); }
  function drawerOpen() {
    var toggle = drawerToggle();
    return Boolean(toggle && toggle.checked && phone.matches);
  }
  function setDrawer(open, moveFocus) {
    var toggle = drawerToggle();
    if (!toggle) { return; }
    toggle.checked = open;
    syncDrawer(moveFocus);
  }
  function syncDrawer(moveFocus) {
    var toggle = drawerToggle();
    var open = Boolean(toggle && toggle.checked);
    var button = document.querySelector(".menu-button");
    var main = document.querySelector("main.chat");
    if (button) { button.setAttribute("aria-expanded", open ? "true" : "false"); }
    // While the drawer covers the page on a phone, the page behind it is inert.
    if (main) { main.inert = open && phone.matches; }
    if (!moveFocus) { return; }
    if (open) {
      var first = document.querySelector(".sidebar .conv.active a, .sidebar .new-chat");
      if (first) { first.focus(); }
    } else if (button && phone.matches) {
      button.focus();
    }
  }

  // --- The open conversation's heading names the tab ----------------------------------
  function syncTitle() {
    var title = document.querySelector("#chat-header .chat-title");
    if (title) { document.title = title.textContent + " · Chatsite"; }
  }

  // A conversation's menu is a popover (the top layer): place it under its button,
  // inside the window, before it shows; once shown, above the button if it is too tall.
  function placeMenu(menu, shown) {
    var button = document.querySelector("[popovertarget='" + menu.id + "']");
    if (!button) { return; }
    var anchor = button.getBoundingClientRect();
    var width = shown ? menu.offsetWidth : parseFloat(window.getComputedStyle(menu).width) || 220;
    var left = Math.max(8, Math.min(anchor.right - width, window.innerWidth - width - 8));
    var top = anchor.bottom + 4;
    if (shown && top + menu.offsetHeight > window.innerHeight - 8) {
      top = Math.max(8, anchor.top - menu.offsetHeight - 4);
    }
    menu.style.left = left + "px";
    menu.style.top = top + "px";
  }
  function isMenu(element) {
    return Boolean(element.classList && element.classList.contains("conv-menu-body"));
  }
  document.addEventListener("beforetoggle", function (event) {
    if (isMenu(event.target) && event.newState === "open") { placeMenu(event.target, false); }
  }, true);
  document.addEventListener("toggle", function (event) {
    if (!isMenu(event.target) || event.newState !== "open") { return; }
    placeMenu(event.target, true);
    var title = event.target.querySelector("input[name=title]");
    if (title) { title.focus(); title.select(); }
  }, true);
  function menuOpen() {
    try { return document.querySelector(".conv-menu-body:popover-open") !== null; } catch (e) { return false; }
  }

  document.addEventListener("input", function (event) {
    if (event.target === input()) { autosize(); }
  });

  document.addEventListener("click", function (event) {
    if (!event.target.closest) { return; }
    var copy = event.target.closest("button.copy");
    if (copy) {
      var source = document.querySelector(copy.dataset.copy);
      if (source) {
        copyText(messageText(source)).then(function () { showCopied(copy, copy.dataset.copied || copiedLabel()); }, function () {});
      }
      return;
    }
    var codeCopy = event.target.closest("button.code-copy");
    if (codeCopy) {
      var pre = codeCopy.nextElementSibling;
      if (pre) {
        copyText(pre.textContent.replace(/\n$/, "")).then(function () { showCopied(codeCopy, copiedLabel()); }, function () {});
      }
      return;
    }
    var cancel = event.target.closest(".msg-edit-cancel");
    if (cancel) { closeEdit(cancel.closest(".msg-edit")); return; }
    if (event.target.closest(".menu-button")) { setDrawer(true, true); return; }
    if (event.target.closest(".sidebar-close")) { setDrawer(false, true); return; }
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
    if (event.target.id === "sidebar-toggle") { syncDrawer(true); }  // the scrim closed it
    if (event.target.id === "role-select") {
      document.querySelectorAll(".role-card").forEach(function (c) {
        c.classList.toggle("selected", c.dataset.role === event.target.value);
      });
    }
  });

  // --- Search: Ctrl+K (⌘K on a Mac), Escape, arrows through the results -----------
  // On a Mac, Ctrl+K is the text fields' "delete to the end of the line": left alone.
  var mac = /Mac|iPhone|iPad/.test(navigator.platform || "");
  function searchInput() { return document.getElementById("search-input"); }
  function searchClear(box) {
    box.value = "";
    // Told as typing is, so htmx sends the empty query (the results hide) and forgets
    // the old one: the same words typed again search again.
    box.dispatchEvent(new Event("input", { bubbles: true }));
    var results = document.getElementById("search-results");
    if (results) { results.hidden = true; }
  }
  document.addEventListener("keydown", function (event) {
    var box = searchInput();
    if (!box || event.isComposing || event.keyCode === 229) { return; }  // an IME picks a word
    if ((mac ? event.metaKey : event.ctrlKey) && !event.altKey && (event.key === "k" || event.key === "K")) {
      event.preventDefault();
      if (phone.matches) { setDrawer(true, false); }
      box.focus();
      box.select();
      return;
    }
    var hits = Array.prototype.slice.call(document.querySelectorAll("#search-results .hit > a"));
    var at = hits.indexOf(document.activeElement);
    if (event.key === "Escape" && (event.target === box || at >= 0)) {
      event.preventDefault();
      // Esc clears the search; in an empty box it closes the phone's drawer.
      if (box.value) { searchClear(box); box.focus(); } else if (drawerOpen()) { setDrawer(false, true); } else { focusInput(); }
      return;
    }
    if ((event.key === "ArrowDown" || event.key === "ArrowUp") && (event.target === box || at >= 0) && hits.length) {
      event.preventDefault();
      var next = event.key === "ArrowDown" ? at + 1 : at - 1;
      if (next < 0) { box.focus(); } else { hits[Math.min(next, hits.length - 1)].focus(); }
    }
  });
  // A search result opens its conversation at the message: shown, marked, not scrolled past.
  function showFound() {
    document.querySelectorAll(".msg.found").forEach(function (m) { m.classList.remove("found"); });
    var match = /^#msg-(\d+)$/.exec(window.location.hash);
    var found = match && document.getElementById("msg-" + match[1]);
    if (!found) { return false; }
    stickToBottom = false;
    found.classList.add("found");
    found.scrollIntoView({ block: "center" });
    return true;
  }
  // The message may be earlier than those loaded: load earlier ones, a page at a time
  // (each answer settles, then this looks again), until it is there or none are left.
  var seeking = false;
  function seekFound() {
    seeking = false;
    if (showFound()) { return true; }
    var loader = document.querySelector("#messages .older-messages");
    if (!loader || !/^#msg-\d+$/.test(window.location.hash)) { return false; }
    seeking = true;
    stickToBottom = false;
    htmx.trigger(loader, "seek");
    return true;
  }
  // The browser's own jump to #msg-N comes at load, after ours, and puts the message at
  // the very top: centre it again.
  window.addEventListener("load", function () { if (!seeking) { showFound(); } });
  // A result in the open conversation: no page load (the same #msg-N fires no
  // hashchange either), so the message is shown here.
  document.addEventListener("click", function (event) {
    var hit = event.target.closest && event.target.closest("#search-results .hit > a");
    if (!hit || hit.pathname !== window.location.pathname || event.ctrlKey || event.metaKey || event.shiftKey) { return; }
    event.preventDefault();
    history.replaceState(null, "", hit.href);
    seekFound();
    if (drawerOpen()) { setDrawer(false, false); }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var box = messages();
    if (box) {
      box.addEventListener("scroll", function () {
        stickToBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
      });
      // Whatever makes the conversation taller (a finished render, code buttons) or its
      // window shorter (the composer after a reply): the newest text stays in view.
      new MutationObserver(scrollToBottom).observe(box, { childList: true, subtree: true });
      if (window.ResizeObserver) { new ResizeObserver(scrollToBottom).observe(box); }
    }
    addCodeButtons();
    if (!seekFound()) { scrollToBottom(); }
    autosize();
    focusInput();
    syncDrawer(false);
    phone.addEventListener("change", function () { syncDrawer(false); });
  });

  // A rename (an HTTP swap) may have renamed the open conversation's heading.
  document.addEventListener("htmx:afterSettle", function () {
    syncTitle();
    addCodeButtons();
    scrollToBottom();  // the finished render and its code buttons made the reply taller
    keepFromBottom = null;
    if (seeking) { seekFound(); }
  });

  // Tell the server which conversation is open, so deleting it can leave the page.
  document.addEventListener("htmx:configRequest", function (event) {
    var header = document.getElementById("chat-header");
    if (header && header.dataset.conversation) {
      event.detail.headers["X-Chat-Current"] = header.dataset.conversation;
    }
  });

  // Regenerate and edit are written by the model the picker shows now, like a new message.
  document.addEventListener("htmx:wsConfigSend", function (event) {
    var action = event.detail.parameters.action;
    var picker = document.getElementById("model-select");
    if (picker && picker.value && (action === "regenerate" || action === "edit")) {
      event.detail.parameters.model = picker.value;
    }
  });

  // The model search: a match typed or chosen from the browser's suggestions is picked,
  // Enter takes the first model whose name contains what was typed.
  function modelSearchPick(box, partial) {
    var query = box.value.trim().toLowerCase();
    var picker = document.getElementById("model-select");
    var list = document.getElementById("model-options");
    if (!query || !picker || !list) { return false; }
    var options = Array.prototype.slice.call(list.options);
    var match = options.filter(function (o) { return o.value.toLowerCase() === query; })[0];
    if (!match && partial) {  // the model's name, its id, or its provider's name
      match = options.filter(function (o) {
        return (o.value + " " + o.dataset.model).toLowerCase().indexOf(query) >= 0;
      })[0];
    }
    if (!match) { return false; }
    picker.value = match.dataset.model;
    picker.dispatchEvent(new Event("change", { bubbles: true }));
    box.value = "";
    focusInput();
    return true;
  }
  document.addEventListener("input", function (event) {
    if (event.target.id === "model-search") { modelSearchPick(event.target, false); }
  });
  document.addEventListener("keydown", function (event) {
    // Not while an IME composes (Chinese, Japanese): that Enter confirms a word.
    if (event.target.id === "model-search" && event.key === "Enter" && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      modelSearchPick(event.target, true);
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

  document.addEventListener("htmx:wsAfterMessage", function (event) {
    // A conversation's new title (to every tab of the user, whatever it is doing): only
    // the tab's title follows; focus, scrolling, the composer and the drawer stay as they are.
    if (event.detail && typeof event.detail.message === "string" && event.detail.message.indexOf('data-frame="titled"') !== -1) {
      syncTitle();
      return;
    }
    var box = input();
    if (box) { box.readOnly = false; }  // answered: a refused message stays, editable
    scrollToBottom();
    // A new conversation was created by the first message: give it its own address.
    var header = document.getElementById("chat-header");
    if (header && header.dataset.url && window.location.pathname !== header.dataset.url) {
      window.history.replaceState({}, "", header.dataset.url);
    }
    syncTitle();  // and the model may have named the conversation
    if (!document.getElementById("stop-form")) { focusInput(); }
    autosize();
    addCodeButtons();
    // Close the phone sidebar after a conversation starts.
    if (drawerOpen()) { setDrawer(false, false); }
  });

  // --- Images: attached by the button, by paste, or by dropping them on the composer ----
  // Each is uploaded at once (checked and re-encoded by the server); the message then
  // sends their ids. A refused one says why, under the composer.
  function attachments() { return document.getElementById("attachments"); }
  function attachedCount() {
    var box = attachments();
    return box ? box.querySelectorAll("input[name=attachments]").length : 0;
  }
  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; }
    catch (e) { return ""; }
  }
  function showComposerError(text) {
    var error = document.getElementById("composer-error");
    if (error) { error.textContent = text; }
  }
  function upload(file) {
    var box = attachments();
    if (!box || !file || file.type.indexOf("image/") !== 0) { return; }
    if (box.children.length >= Number(box.dataset.max || 4)) { return; }
    var chip = document.createElement("span");
    chip.className = "attachment-chip uploading";
    var preview = document.createElement("img");
    preview.alt = "";
    chip.appendChild(preview);
    var remove = document.createElement("button");
    remove.type = "button";
    remove.className = "attachment-remove";
    remove.textContent = "×";
    remove.title = box.dataset.remove || "Remove";
    remove.setAttribute("aria-label", remove.title);
    chip.appendChild(remove);
    box.appendChild(chip);
    var body = new FormData();
    body.append("file", file);
    fetch(box.dataset.upload, {
      method: "POST", body: body, credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() }
    }).then(function (response) {
      return response.json().then(function (data) { return { ok: response.ok, data: data }; });
    }).then(function (result) {
      if (!result.ok) { throw new Error((result.data.error || {}).message || "Upload failed"); }
      if (!chip.isConnected) { removeUpload(box, result.data.id); return; }  // × while it uploaded
      preview.src = result.data.url;  // the stored image, as the model will see it
      var id = document.createElement("input");
      id.type = "hidden";
      id.name = "attachments";
      id.value = String(result.data.id);
      chip.appendChild(id);
      chip.classList.remove("uploading");
    }).catch(function (error) {
      chip.remove();
      showComposerError(error.message);
    });
  }
  // Not sent, so not kept: the server deletes the upload (it would expire anyway).
  function removeUpload(box, id) {
    if (!box || !box.dataset.upload) { return; }
    fetch(box.dataset.upload + id + "/", {
      method: "DELETE", credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() }
    }).catch(function () {});
  }
  document.addEventListener("change", function (event) {
    if (event.target.id !== "attach-input") { return; }
    Array.prototype.forEach.call(event.target.files || [], upload);
    event.target.value = "";
  });
  document.addEventListener("paste", function (event) {
    if (event.target !== input() || !event.clipboardData) { return; }
    var files = Array.prototype.filter.call(event.clipboardData.files || [], function (file) {
      return file.type.indexOf("image/") === 0;
    });
    if (files.length) { event.preventDefault(); files.forEach(upload); }
  });
  document.addEventListener("click", function (event) {
    var remove = event.target.closest && event.target.closest(".attachment-remove");
    if (!remove) { return; }
    var chip = remove.parentElement;
    var id = chip.querySelector("input[name=attachments]");
    chip.remove();
    if (id) { removeUpload(attachments(), id.value); }
  });
  ["dragenter", "dragover"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      var composer = event.target.closest && event.target.closest("#composer");
      if (!composer || !event.dataTransfer || Array.prototype.indexOf.call(event.dataTransfer.types, "Files") < 0) { return; }
      event.preventDefault();
      composer.classList.add("dragging");
    });
  });
  ["dragleave", "drop"].forEach(function (type) {
    document.addEventListener(type, function (event) {
      var composer = document.getElementById("composer");
      if (composer) { composer.classList.remove("dragging"); }
      if (type === "drop" && event.target.closest && event.target.closest("#composer") && event.dataTransfer) {
        event.preventDefault();
        Array.prototype.forEach.call(event.dataTransfer.files || [], upload);
      }
    });
  });

  function setConnection(state) {
    var badge = document.getElementById("connection-state");
    if (!badge) { return; }
    badge.dataset.state = state;
    // The dot's colour, as text for assistive technology.
    var text = document.getElementById("connection-text");
    var label = badge.dataset[state];
    if (text && label && text.textContent !== label) { text.textContent = label; }
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
