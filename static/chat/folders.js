// Drag a conversation in the sidebar onto a folder to move it there, or onto the list
// to take it out of its folder. The menu's "Move to folder…" does the same without a mouse.
(function () {
  "use strict";
  var TYPE = "application/x-chatsite-conversation";

  function zoneOf(event) {
    return event.target.closest ? event.target.closest("[data-drop-folder]") : null;
  }
  function carries(event) {
    return Array.prototype.indexOf.call(event.dataTransfer.types, TYPE) !== -1;
  }
  function clearTargets() {
    document.querySelectorAll(".drop-target").forEach(function (el) { el.classList.remove("drop-target"); });
  }

  document.addEventListener("dragstart", function (event) {
    var item = event.target.closest ? event.target.closest(".conv[data-move]") : null;
    if (!item) { return; }
    event.dataTransfer.setData(TYPE, item.dataset.move);
    event.dataTransfer.effectAllowed = "move";
  });
  document.addEventListener("dragover", function (event) {
    var zone = zoneOf(event);
    if (!zone || !carries(event)) { return; }
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    if (!zone.classList.contains("drop-target")) { clearTargets(); zone.classList.add("drop-target"); }
  });
  document.addEventListener("dragleave", function (event) {
    var zone = zoneOf(event);
    if (zone && !zone.contains(event.relatedTarget)) { zone.classList.remove("drop-target"); }
  });
  document.addEventListener("dragend", clearTargets);
  document.addEventListener("drop", function (event) {
    var zone = zoneOf(event);
    var url = zone && carries(event) ? event.dataTransfer.getData(TYPE) : "";
    clearTargets();
    if (!url) { return; }
    event.preventDefault();
    htmx.ajax("POST", url, {
      source: zone, target: "#sidebar-lists", swap: "outerHTML", values: { folder: zone.dataset.dropFolder }
    });
  });
})();
