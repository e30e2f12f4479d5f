// Stripe Elements on the hosted checkout page. Stripe.js (loaded just before this file from
// PAYWIRE_STRIPE_JS_URL) mounts a card Element and makes a PaymentMethod with the publishable
// key; only its id is posted to Paywire, which confirms the payment. When the bank asks for
// 3-D Secure the server sends the page back with the PaymentIntent's client secret: this runs
// `stripe.handleNextAction` (or the older `handleCardAction`) and posts the same payment method
// again, and Paywire continues the same PaymentIntent. Declines come back as the page's error.
(function () {
  "use strict";
  var form = document.getElementById("payment-form");
  if (!form) return;
  var button = document.getElementById("pay-button");
  var methodField = document.getElementById("payment_method");
  var cardError = document.getElementById("card-error");
  var email = document.getElementById("email");
  var label = button.textContent;

  function busy(on) {
    button.disabled = on;
    if (on) {
      button.setAttribute("aria-busy", "true");
      button.textContent = form.getAttribute("data-processing") || label;
    } else {
      button.removeAttribute("aria-busy");
      button.textContent = label;
    }
  }
  function showError(text) { cardError.textContent = text || ""; }

  if (typeof window.Stripe !== "function") {
    showError(form.getAttribute("data-msg-script_missing"));
    button.disabled = true;
    return;
  }
  var stripe = window.Stripe(form.getAttribute("data-publishable-key"));
  var elements = stripe.elements({ locale: form.getAttribute("data-locale") || "auto" });
  var card = elements.create("card", { hidePostalCode: true });
  card.mount("#card-element");
  card.on("change", function (event) { showError(event.error ? event.error.message : ""); });

  function emailOk() {
    if (!email) return true;
    var v = email.value.trim();
    var good = v.length <= 320 && /^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(v);
    var box = document.getElementById("email-error");
    if (good) { email.removeAttribute("aria-invalid"); } else { email.setAttribute("aria-invalid", "true"); }
    if (box) box.textContent = good ? "" : form.getAttribute("data-msg-email_invalid");
    if (!good) email.focus();
    return good;
  }

  var sent = false;
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (sent || !emailOk()) return;  // one payment, however many clicks
    sent = true;
    busy(true);
    showError("");
    var details = email ? { email: email.value.trim() } : {};
    stripe.createPaymentMethod({ type: "card", card: card, billing_details: details }).then(function (result) {
      if (result.error) {
        showError(result.error.message);
        sent = false;
        busy(false);
        return;
      }
      methodField.value = result.paymentMethod.id;
      form.submit();  // a normal POST: CSRF token and all
    });
  });

  // 3-D Secure: authenticate with the bank, then post back to finish.
  var secret = form.getAttribute("data-client-secret");
  if (secret) {
    sent = true;
    busy(true);
    var next = typeof stripe.handleNextAction === "function"
      ? stripe.handleNextAction({ clientSecret: secret })
      : stripe.handleCardAction(secret);
    next.then(function (result) {
      if (result.error) {  // authentication failed or was abandoned: nothing was charged
        showError(result.error.message);
        sent = false;
        busy(false);
        return;
      }
      methodField.value = form.getAttribute("data-payment-method");
      form.submit();
    });
  }

  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { sent = false; busy(false); }
  });
})();
