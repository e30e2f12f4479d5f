// The invoice page's Print button (without JavaScript, the browser's own Print does the same).
(function () {
  "use strict";
  var button = document.getElementById("print-invoice");
  if (!button) return;
  button.hidden = false;
  button.addEventListener("click", function () { window.print(); });
})();
