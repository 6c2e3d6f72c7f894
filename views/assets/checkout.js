// The pay page's "add a card or bank account" step. The card or account
// number goes from this browser straight to the payment processor (Stripe.js
// on the real service, the stand-in's API on the sandbox); Settle's server
// only receives the confirmed SetupIntent id.
(function () {
  'use strict'
  var form = document.getElementById('add-method')
  if (!form) return
  var mode = form.dataset.mode
  var errorBox = form.querySelector('[data-error]')
  var submit = form.querySelector('button[type="submit"]')
  var submitLabel = submit.textContent
  var stripe = null
  var elements = null

  function kind () {
    var checked = form.querySelector('input[name="kind"]:checked')
    return checked ? checked.value : 'card'
  }
  function showKind () {
    form.querySelectorAll('[data-kind]').forEach(function (el) { el.hidden = el.dataset.kind !== kind() })
  }
  form.querySelectorAll('input[name="kind"]').forEach(function (r) { r.addEventListener('change', showKind) })
  showKind()

  function fail (message) {
    errorBox.textContent = message
    errorBox.hidden = false
    submit.disabled = false
    submit.textContent = submitLabel
  }
  function busy (text) {
    errorBox.hidden = true
    submit.disabled = true
    submit.textContent = text
  }
  function field (name) {
    var el = form.querySelector('[data-kind="' + kind() + '"] [data-field="' + name + '"], [data-field="' + name + '"]')
    return el ? el.value.trim() : ''
  }
  function value (name) { var el = form.elements[name]; return el ? el.value.trim() : '' }

  async function startSetup () {
    var res = await fetch(form.dataset.setupUrl, { method: 'POST', headers: { accept: 'application/json' }, credentials: 'same-origin' })
    var body = await res.json().catch(function () { return {} })
    if (!res.ok) throw new Error(body.error && body.error.message ? body.error.message : 'We could not start adding your payment method; please try again.')
    return body
  }

  // ---- sandbox: what Stripe.js would send, sent to the stand-in ----
  async function stripeApi (base, path, params) {
    var res = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(params).toString() })
    var body = await res.json()
    if (body.error) throw new Error(body.error.message)
    return body
  }
  function waitForChallenge () {
    var box = form.querySelector('[data-challenge]')
    box.hidden = false
    box.querySelector('button').focus()
    return new Promise(function (resolve) {
      box.querySelectorAll('[data-challenge-answer]').forEach(function (b) {
        b.onclick = function () { box.hidden = true; resolve(b.dataset.challengeAnswer) }
      })
    })
  }
  async function confirmSandbox (setup) {
    var base = new URL(setup.sandboxApiBase).pathname.replace(/\/$/, '')
    var p = { key: setup.publishableKey, client_secret: setup.clientSecret, 'payment_method_data[type]': kind(), 'payment_method_data[billing_details][name]': value('name') }
    if (value('email')) p['payment_method_data[billing_details][email]'] = value('email')
    if (kind() === 'card') {
      var exp = field('exp').split('/')
      p['payment_method_data[card][number]'] = field('number').replace(/\s+/g, '')
      p['payment_method_data[card][exp_month]'] = (exp[0] || '').trim()
      p['payment_method_data[card][exp_year]'] = (exp[1] || '').trim()
      p['payment_method_data[card][cvc]'] = field('cvc')
      if (field('state')) p['payment_method_data[billing_details][address][state]'] = field('state').toUpperCase()
    } else {
      p['payment_method_data[us_bank_account][routing_number]'] = field('routing')
      p['payment_method_data[us_bank_account][account_number]'] = field('account')
      p['payment_method_data[us_bank_account][account_holder_type]'] = 'company'
      p['mandate_data[customer_acceptance][type]'] = 'online'
      p['mandate_data[customer_acceptance][online][infer_from_client]'] = 'true'
    }
    var intent = await stripeApi(base, '/v1/setup_intents/' + setup.setupId + '/confirm', p)
    if (intent.status === 'requires_action') {
      busy('Waiting for your bank…')
      var answer = await waitForChallenge()
      intent = await stripeApi(base, '/v1/setup_intents/' + setup.setupId + '/sandbox_authenticate', { key: setup.publishableKey, client_secret: setup.clientSecret, result: answer })
    }
    if (intent.status !== 'succeeded') throw new Error(intent.last_setup_error ? intent.last_setup_error.message : 'Your payment method could not be confirmed.')
  }

  // ---- the real service: Stripe's Payment Element ----
  function mountStripe () {
    if (mode !== 'stripe' || stripe || typeof window.Stripe !== 'function') return
    stripe = window.Stripe(form.dataset.publishableKey)
    elements = stripe.elements({ mode: 'setup', currency: 'usd' })
    elements.create('payment').mount('#payment-element')
    // The Payment Element offers card and bank itself.
    form.querySelector('fieldset').hidden = true
  }
  async function confirmStripe (setup) {
    var submitted = await elements.submit()
    if (submitted.error) throw new Error(submitted.error.message)
    var result = await stripe.confirmSetup({
      elements: elements,
      clientSecret: setup.clientSecret,
      redirect: 'if_required',
      confirmParams: { return_url: window.location.href, payment_method_data: { billing_details: { name: value('name'), email: value('email') || undefined } } }
    })
    if (result.error) throw new Error(result.error.message)
  }
  window.addEventListener('load', mountStripe)

  form.addEventListener('submit', async function (event) {
    if (form.elements.setup_intent.value) return
    event.preventDefault()
    if (!form.reportValidity()) return
    busy('Checking with your bank…')
    try {
      if (mode === 'stripe' && !stripe) throw new Error('The secure card form did not load; check your connection and reload the page.')
      var setup = await startSetup()
      if (mode === 'sandbox') await confirmSandbox(setup)
      else await confirmStripe(setup)
      form.elements.setup_intent.value = setup.setupId
      busy('Saving…')
      form.submit()
    } catch (error) {
      fail(error.message)
    }
  })
})()
