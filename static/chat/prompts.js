// The prompt library in the message box: typing / lists the saved prompts whose title
// holds what follows it; ↑/↓ pick one, Enter or Tab puts its text in the box, Esc closes.
// The prompts come from the page (#prompt-library) and are shown as text only.
(function () {
  "use strict";

  var shown = [];  // the prompts listed: [{title, text}]
  var active = -1;
  var inserting = false;

  function box() { return document.getElementById("message-input"); }
  function menu() { return document.getElementById("prompt-menu"); }

  function library() {
    var list = document.getElementById("prompt-library");
    if (!list) { return []; }
    return Array.prototype.map.call(list.querySelectorAll("li"), function (item) {
      return { title: item.dataset.title, text: item.dataset.text };
    });
  }

  function close() {
    var open = menu();
    if (open) { open.remove(); }
    shown = [];
    active = -1;
    var input = box();
    if (input) {
      input.removeAttribute("aria-activedescendant");
      input.removeAttribute("aria-controls");
    }
  }

  function render(input, query) {
    var all = library();
    shown = all.filter(function (p) { return p.title.toLowerCase().indexOf(query) !== -1; });
    // Titles that start with the query first, then the others, each in the library's order.
    shown.sort(function (a, b) {
      return (b.title.toLowerCase().indexOf(query) === 0) - (a.title.toLowerCase().indexOf(query) === 0);
    });
    active = shown.length ? 0 : -1;
    var list = menu();
    if (!list) {
      list = document.createElement("ul");
      list.id = "prompt-menu";
      list.className = "prompt-menu";
      list.setAttribute("role", "listbox");
      list.setAttribute("aria-label", document.getElementById("prompt-library").dataset.label);
      var composer = document.getElementById("composer");
      composer.parentNode.insertBefore(list, composer);
    }
    list.textContent = "";
    if (!shown.length) {
      var empty = document.createElement("li");
      empty.className = "prompt-empty";
      empty.textContent = document.getElementById("prompt-library").dataset.empty;
      list.appendChild(empty);
    }
    shown.forEach(function (p, index) {
      var option = document.createElement("li");
      option.id = "prompt-option-" + index;
      option.setAttribute("role", "option");
      option.dataset.index = String(index);
      var title = document.createElement("strong");
      title.textContent = p.title;
      var text = document.createElement("span");
      text.textContent = p.text;
      option.appendChild(title);
      option.appendChild(text);
      list.appendChild(option);
    });
    // A textarea may not say aria-expanded (axe: aria-allowed-attr); it names the list it
    // controls, and the list's active option is its aria-activedescendant.
    input.setAttribute("aria-controls", "prompt-menu");
    highlight(input);
  }

  function highlight(input) {
    var list = menu();
    if (!list) { return; }
    list.querySelectorAll("[role=option]").forEach(function (option) {
      var on = Number(option.dataset.index) === active;
      option.setAttribute("aria-selected", on ? "true" : "false");
      if (on) { option.scrollIntoView({ block: "nearest" }); }
    });
    if (active >= 0) { input.setAttribute("aria-activedescendant", "prompt-option-" + active); }
    else { input.removeAttribute("aria-activedescendant"); }
  }

  function insert(input, index) {
    var prompt = shown[index];
    close();
    if (!prompt) { return; }
    input.value = prompt.text;
    inserting = true;  // a prompt that starts with "/" must not open the list again
    input.dispatchEvent(new Event("input", { bubbles: true }));  // the box grows to fit
    inserting = false;
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
  }

  document.addEventListener("input", function (event) {
    var input = box();
    if (event.target !== input || inserting) { return; }
    var match = /^\/([^\n]*)$/.exec(input.value);
    if (match && document.getElementById("prompt-library")) { render(input, match[1].trim().toLowerCase()); }
    else { close(); }
  });

  // Capture: before chat.js sends on Enter or stops a reply on Esc.
  window.addEventListener("keydown", function (event) {
    var input = box();
    if (!menu() || event.target !== input || event.isComposing || event.keyCode === 229) { return; }
    var taken = true;
    if (event.key === "ArrowDown" && shown.length) { active = (active + 1) % shown.length; highlight(input); }
    else if (event.key === "ArrowUp" && shown.length) { active = (active - 1 + shown.length) % shown.length; highlight(input); }
    else if ((event.key === "Enter" || event.key === "Tab") && !event.shiftKey && active >= 0) { insert(input, active); }
    else if (event.key === "Escape") { close(); }
    else { taken = false; }
    if (taken) {
      event.preventDefault();
      event.stopPropagation();
    }
  }, true);

  document.addEventListener("mousedown", function (event) {
    var option = event.target.closest && event.target.closest("#prompt-menu [role=option]");
    if (!option) { return; }
    event.preventDefault();  // the box keeps its focus
    insert(box(), Number(option.dataset.index));
  });

  document.addEventListener("focusout", function (event) {
    if (event.target === box()) { close(); }
  });
})();
