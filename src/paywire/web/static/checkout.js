// The test card form: formats the number and expiry as they are typed, checks every field with
// the server's rules (Luhn, MM / YY not past, CVC 3-4 digits) before sending, and sends once.
(function () {
  "use strict";
  var form = document.getElementById("payment-form");
  if (!form) return;
  var number = document.getElementById("card_number");
  var expiry = document.getElementById("expiry");
  var cvc = document.getElementById("cvc");
  var email = document.getElementById("email");
  var button = document.getElementById("pay-button");

  function message(code) { return form.getAttribute("data-msg-" + code) || code; }
  function digits(value) { return value.replace(/\D/g, ""); }

  function luhn(value) {
    var total = 0;
    for (var i = 0; i < value.length; i++) {
      var d = +value.charAt(value.length - 1 - i);
      if (i % 2 === 1) { d *= 2; if (d > 9) d -= 9; }
      total += d;
    }
    return total % 10 === 0;
  }

  function numberError() {
    var raw = number.value.replace(/[\s-]/g, "");
    if (!raw) return "number_missing";
    if (!/^\d{12,19}$/.test(raw) || !luhn(raw)) return "number_invalid";
    return null;
  }

  function expiryError() {
    var m = /^\s*(\d{1,2})\s*\/?\s*(\d{2}|\d{4})\s*$/.exec(expiry.value);
    if (!m) return "expiry_invalid";
    var month = +m[1], year = +m[2];
    if (year < 100) year += 2000;
    var now = new Date();
    if (month < 1 || month > 12 || year > now.getFullYear() + 50) return "expiry_invalid";
    if (year < now.getFullYear() || (year === now.getFullYear() && month < now.getMonth() + 1)) return "expiry_past";
    return null;
  }

  function cvcError() { return /^\d{3,4}$/.test(cvc.value.trim()) ? null : "cvc_invalid"; }

  function emailError() {
    if (!email) return null;
    var v = email.value.trim();
    return v.length <= 320 && /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(v) ? null : "email_invalid";
  }

  function show(input, code) {
    var box = document.getElementById(input.id + "-error");
    if (code) { input.setAttribute("aria-invalid", "true"); } else { input.removeAttribute("aria-invalid"); }
    if (box) box.textContent = code ? message(code) : "";
    return !code;
  }

  number.addEventListener("input", function () {
    var d = digits(number.value).slice(0, 19);
    var groups = /^3[47]/.test(d) ? [4, 6, 5] : [4, 4, 4, 4, 3];
    var out = [], at = 0;
    for (var g = 0; g < groups.length && at < d.length; g++) { out.push(d.slice(at, at + groups[g])); at += groups[g]; }
    number.value = out.join(" ");
  });
  expiry.addEventListener("input", function (event) {
    var d = digits(expiry.value).slice(0, 4);
    if (d.length === 1 && +d > 1) d = "0" + d;
    var deleting = event.inputType && event.inputType.indexOf("delete") === 0;
    expiry.value = d.length > 2 || (d.length === 2 && !deleting) ? d.slice(0, 2) + " / " + d.slice(2) : d;
  });
  cvc.addEventListener("input", function () { cvc.value = digits(cvc.value).slice(0, 4); });
  number.addEventListener("blur", function () { if (number.value) show(number, numberError()); });
  expiry.addEventListener("blur", function () { if (expiry.value) show(expiry, expiryError()); });
  cvc.addEventListener("blur", function () { if (cvc.value) show(cvc, cvcError()); });

  var sent = false;
  form.addEventListener("submit", function (event) {
    if (sent) { event.preventDefault(); return; }  // one payment, however many clicks
    var ok = true, first = null;
    [[email, emailError], [number, numberError], [expiry, expiryError], [cvc, cvcError]].forEach(function (pair) {
      if (!pair[0]) return;
      var good = show(pair[0], pair[1]());
      if (!good && !first) first = pair[0];
      ok = ok && good;
    });
    if (!ok) { event.preventDefault(); first.focus(); return; }
    sent = true;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    button.textContent = form.getAttribute("data-processing") || button.textContent;
  });
  // Coming back with the browser's Back button must not leave the button stuck.
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { sent = false; button.disabled = false; button.removeAttribute("aria-busy"); }
  });
})();
