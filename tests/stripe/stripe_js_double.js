// A test double of Stripe.js (v3), served by tests/stripe/localstripe_launcher.py at
// `/js.stripe.com/v3/` instead of localstripe's own fake, whose createPaymentMethod does
// nothing. It implements only the calls Paywire's checkout page makes, with Stripe.js's
// documented signatures and result shapes, against localstripe's API:
//
//   Stripe(publishableKey)                      -> stripe
//   stripe.elements(options).create("card")     -> a card Element: mount(), on("change"), focus()
//   stripe.createPaymentMethod({type: "card", card, billing_details})
//                                               -> {paymentMethod} | {error}
//   stripe.handleNextAction({clientSecret}), stripe.handleCardAction(clientSecret)
//                                               -> {paymentIntent} | {error}
//
// Unlike Stripe's, the card fields are plain inputs in the page (Stripe's live in its own
// iframe), and 3-D Secure is a box with "Complete authentication" / "Fail authentication"
// (Stripe's test challenge page has the same two buttons) that posts to localstripe's
// `/v1/payment_intents/{id}/_authenticate`. Test code only: never shipped, never loaded by
// Paywire unless PAYWIRE_STRIPE_JS_URL points here.
(function () {
  "use strict";
  var BASE = document.currentScript.src.replace(/\/js\.stripe\.com\/v3\/?$/, "");

  function luhn(digits) {
    var total = 0;
    for (var i = 0; i < digits.length; i++) {
      var d = +digits.charAt(digits.length - 1 - i);
      if (i % 2 === 1) { d *= 2; if (d > 9) d -= 9; }
      total += d;
    }
    return total % 10 === 0;
  }

  function validationError(code, message) {
    return { type: "validation_error", code: code, message: message };
  }

  function CardElement() {
    this.listeners = {};
    this.inputs = null;
  }
  CardElement.prototype.mount = function (target) {
    var box = typeof target === "string" ? document.querySelector(target) : target;
    if (!box) throw new Error("Invalid DOM element: " + target);
    var self = this;
    var fields = [
      ["number", "Card number", "1234 1234 1234 1234", "cc-number", 23],
      ["expiry", "Expiration date MM / YY", "MM / YY", "cc-exp", 7],
      ["cvc", "CVC", "CVC", "cc-csc", 4],
    ];
    this.inputs = {};
    var wrap = document.createElement("div");
    wrap.className = "stripe-double";
    wrap.style.display = "flex";
    wrap.style.gap = "8px";
    fields.forEach(function (f) {
      var input = document.createElement("input");
      input.type = "text";
      input.inputMode = "numeric";
      input.setAttribute("aria-label", f[1]);  // no `name`: never part of the merchant's form
      input.placeholder = f[2];
      input.autocomplete = f[3];
      input.maxLength = f[4];
      input.style.flex = f[0] === "number" ? "3" : "1";
      input.style.minWidth = "0";
      input.addEventListener("input", function () { self.emit("change", self.state()); });
      self.inputs[f[0]] = input;
      wrap.appendChild(input);
    });
    box.appendChild(wrap);
    this.emit("ready", {});
  };
  CardElement.prototype.on = function (event, handler) {
    (this.listeners[event] = this.listeners[event] || []).push(handler);
    return this;
  };
  CardElement.prototype.emit = function (event, payload) {
    (this.listeners[event] || []).forEach(function (h) { h(payload); });
  };
  CardElement.prototype.focus = function () { if (this.inputs) this.inputs.number.focus(); };
  CardElement.prototype.update = function () {};
  CardElement.prototype.card = function () {
    var number = this.inputs.number.value.replace(/\D/g, "");
    var exp = /^\s*(\d{1,2})\s*\/?\s*(\d{2})\s*$/.exec(this.inputs.expiry.value);
    var cvc = this.inputs.cvc.value.trim();
    if (!number) return { error: validationError("incomplete_number", "Your card number is incomplete.") };
    if (number.length !== 16 || !luhn(number)) {
      return { error: validationError("invalid_number", "Your card number is invalid.") };
    }
    if (!exp) return { error: validationError("incomplete_expiry", "Your card's expiration date is incomplete.") };
    if (!/^\d{3}$/.test(cvc)) return { error: validationError("incomplete_cvc", "Your card's security code is incomplete.") };
    return { card: { number: number, exp_month: exp[1], exp_year: "20" + exp[2], cvc: cvc } };
  };
  CardElement.prototype.state = function () {
    var read = this.card();
    var empty = !this.inputs.number.value && !this.inputs.expiry.value && !this.inputs.cvc.value;
    return { elementType: "card", empty: empty, complete: !read.error, error: undefined };
  };

  function post(path, form, key) {
    var body = Object.keys(form).map(function (k) {
      return encodeURIComponent(k) + "=" + encodeURIComponent(form[k]);
    });
    body.push("key=" + encodeURIComponent(key));
    return fetch(BASE + path, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: body.join("&"),
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (json) {
        return { ok: response.ok && !json.error, json: json };
      });
    });
  }

  function challenge() {
    return new Promise(function (resolve) {
      var box = document.createElement("div");
      box.setAttribute("role", "dialog");
      box.setAttribute("aria-label", "3D Secure test authentication");
      box.style.position = "fixed";
      box.style.top = "30%";
      box.style.left = "50%";
      box.style.transform = "translateX(-50%)";
      box.style.padding = "20px";
      box.style.background = "#fff";
      box.style.border = "2px solid #635bff";
      box.style.zIndex = "1000";
      var text = document.createElement("p");
      text.textContent = "3D Secure test authentication (Stripe.js test double)";
      box.appendChild(text);
      [["Complete authentication", true], ["Fail authentication", false]].forEach(function (b) {
        var button = document.createElement("button");
        button.type = "button";
        button.textContent = b[0];
        button.addEventListener("click", function () { box.remove(); resolve(b[1]); });
        box.appendChild(button);
      });
      document.body.appendChild(box);
    });
  }

  function Stripe(key) {
    if (!(this instanceof Stripe)) return new Stripe(key);
    if (typeof key !== "string" || key.indexOf("pk_") !== 0) {
      throw new Error("Stripe(): a publishable key (pk_…) is required");
    }
    this.key = key;
  }
  Stripe.prototype.elements = function () {
    var made = null;
    return {
      create: function (type) {
        if (type !== "card") throw new Error("this test double only has the card Element");
        made = new CardElement();
        return made;
      },
      getElement: function () { return made; },
    };
  };
  Stripe.prototype.createPaymentMethod = function (data) {
    if (!data || data.type !== "card" || !(data.card instanceof CardElement)) {
      return Promise.resolve({ error: validationError("invalid_request", "type card and a card Element are required") });
    }
    var read = data.card.card();
    if (read.error) return Promise.resolve({ error: read.error });
    var form = { type: "card" };
    Object.keys(read.card).forEach(function (k) { form["card[" + k + "]"] = read.card[k]; });
    var billing = data.billing_details || {};
    Object.keys(billing).forEach(function (k) { form["billing_details[" + k + "]"] = billing[k]; });
    return post("/v1/payment_methods", form, this.key).then(function (r) {
      return r.ok ? { paymentMethod: r.json } : { error: r.json.error || { message: "Stripe test double failed" } };
    });
  };
  Stripe.prototype.handleNextAction = function (options) {
    var secret = options && options.clientSecret;
    var match = /^(pi_[A-Za-z0-9]+)_secret_/.exec(secret || "");
    if (!match) return Promise.resolve({ error: validationError("invalid_request", "clientSecret is invalid") });
    var key = this.key;
    return challenge().then(function (success) {
      return post("/v1/payment_intents/" + match[1] + "/_authenticate?success=" + success,
                  { client_secret: secret }, key);
    }).then(function (r) {
      if (!r.ok) return { error: r.json.error || { message: "Stripe test double failed" } };
      if (r.json.status === "requires_payment_method") {
        return { error: {
          type: "invalid_request_error",
          code: "payment_intent_authentication_failure",
          message: "We are unable to authenticate your payment method. Please choose a different payment method and try again.",
          payment_intent: r.json,
        } };
      }
      return { paymentIntent: r.json };
    });
  };
  Stripe.prototype.handleCardAction = function (clientSecret) {
    return this.handleNextAction({ clientSecret: clientSecret });
  };

  window.Stripe = Stripe;
})();
