// Settle inside the PSA: the ConnectWise Hosted API handshake, then the
// page's data and the Charge card flow. No framework; every server answer is
// shown with textContent, except the fragment our own server rendered (escaped).
(function () {
  'use strict'
  var root = document.getElementById('embedded')
  if (!root) return
  var status = document.getElementById('emb-status')
  var system = root.dataset.system
  var prefix = system === 'connectwise' ? '/embedded/cw' : '/embedded/autotask'
  var origins = (root.dataset.origins || '').split(' ').filter(Boolean)
  var session = root.dataset.session || null
  var csrf = root.dataset.csrf || null
  var frameId = null
  var pendingMember = null
  var loaded = false
  var renewTimer = null
  // Sessions last 15 minutes; a pod left open renews well before that.
  var RENEW_AFTER_MS = 10 * 60 * 1000

  function say (text, isError) {
    status.textContent = text
    status.className = isError ? 'emb-status emb-error' : 'emb-status'
  }

  // Only the tenant's PSA origin may talk to us, and we only talk to it.
  function toHost (message) {
    if (window.parent === window) return
    var text = JSON.stringify(message)
    origins.forEach(function (o) { try { window.parent.postMessage(text, o) } catch { /* a host frame that went away */ } })
  }

  function api (method, path, body) {
    var headers = { 'x-settle-session': session, accept: 'application/json' }
    if (method !== 'GET') { headers['x-csrf-token'] = csrf; headers['content-type'] = 'application/json' }
    return fetch(path, { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'omit' })
      .then(function (r) {
        var type = r.headers.get('content-type') || ''
        return (type.indexOf('json') >= 0 ? r.json() : r.text()).then(function (data) {
          if (r.status === 401 && loaded) ended()
          return { ok: r.ok, status: r.status, data: data }
        })
      })
  }

  function scheduleRenew () {
    clearTimeout(renewTimer)
    renewTimer = setTimeout(function () {
      api('POST', prefix + '/session/renew', {}).then(function (res) {
        if (!res.ok) return // ended() has taken over
        session = res.data.session
        csrf = res.data.csrf
        scheduleRenew()
      }).catch(function () { scheduleRenew() })
    }, RENEW_AFTER_MS)
  }

  // The session ran out (a laptop slept past a renewal, or the 12-hour limit):
  // ConnectWise can prove the member again without a reload; Autotask cannot.
  function ended () {
    clearTimeout(renewTimer)
    session = null
    if (system === 'connectwise' && frameId !== null) {
      pendingMember = null
      say('Confirming your ConnectWise sign-in again…')
      toHost({ hosted_request: 'getMemberAuthentication', frameID: frameId })
    } else {
      say('Your Settle session has ended. Reopen this page from Autotask to continue.', true)
    }
  }

  function errorText (res) {
    return (res.data && res.data.error && res.data.error.message) || 'Something went wrong (' + res.status + '). Try again.'
  }

  window.addEventListener('message', function (event) {
    if (origins.indexOf(event.origin) < 0) return
    var msg
    try { msg = typeof event.data === 'string' ? JSON.parse(event.data) : event.data } catch { return }
    if (!msg || typeof msg !== 'object') return
    if (msg.MessageFrameID !== undefined && frameId === null) {
      frameId = msg.MessageFrameID
      toHost({ hosted_request: 'getMemberAuthentication', frameID: frameId })
      return
    }
    // Host events wait for our answer; never leave them hanging.
    if (typeof msg.event === 'string') {
      toHost({ event: msg.event, _id: msg._id, result: 'success' })
      return
    }
    if (String(msg.response).toLowerCase() === 'getmemberauthentication' && msg.data && session === null && pendingMember === null) {
      pendingMember = msg.data
      verify(msg.data)
    }
  })

  function verify (data) {
    say('Confirming your ConnectWise sign-in…')
    fetch('/embedded/cw/session', {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      credentials: 'omit',
      body: JSON.stringify({ tenant: root.dataset.tenant, site: data.site, companyid: data.companyid, memberid: data.memberid, memberHash: data.memberHash, memberContext: data.memberContext })
    }).then(function (r) { return r.json().then(function (d) { return { ok: r.ok, status: r.status, data: d } }) })
      .then(function (res) {
        if (!res.ok) { say(errorText(res), true); return }
        session = res.data.session
        csrf = res.data.csrf
        scheduleRenew()
        if (loaded) say('Signed in again. Repeat what you were doing if it did not finish.')
        else load()
      })
      .catch(function () { say('Settle could not be reached. Check your connection and reload.', true) })
  }

  var holder = null
  // Other Settle frames of this PSA screen (a pod behind the Charge card dialog) hear of a payment
  // and render again, so no frame keeps a charge form for money already taken.
  var channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel('settle-embedded') : null
  if (channel) {
    channel.onmessage = function (event) {
      var msg = event.data || {}
      if (msg.type !== 'invoice-changed' || !holder || session === null) return
      if (holder.querySelector('[data-invoice-id="' + msg.invoiceId + '"], input[name="invoiceIds"][value="' + msg.invoiceId + '"]')) load()
    }
  }
  function announce (invoiceIds) {
    if (!channel) return
    invoiceIds.forEach(function (id) { channel.postMessage({ type: 'invoice-changed', invoiceId: id }) })
  }

  // Renders the page from the server; `after` is what to say once it is in (a charge's result, say),
  // `result` that result's status, kept on the status line for scripts and styles.
  function load (after, result, then) {
    say('Loading…')
    var q = root.dataset.id ? '?id=' + encodeURIComponent(root.dataset.id) : ''
    api('GET', prefix + '/' + root.dataset.surface + '/view' + q).then(function (res) {
      if (!res.ok) { say(errorText(res), true); return }
      var next = document.createElement('div')
      next.innerHTML = res.data // our own server's render; every PSA value is escaped there
      if (holder) root.replaceChild(next, holder); else root.appendChild(next)
      holder = next
      loaded = true
      say(after || '')
      if (result) { status.dataset.result = result; status.className = 'emb-status result-' + result } else delete status.dataset.result
      wire(holder)
      if (then) then(holder)
    }).catch(function () { say('Settle could not be reached. Reload to try again.', true) })
  }

  function cents (text) {
    var m = /^\s*(\d+)(?:\.(\d{1,2}))?\s*$/.exec(String(text).replace(/[,$\s]/g, ''))
    if (!m) return null
    return Number(m[1]) * 100 + Number(((m[2] || '') + '00').slice(0, 2))
  }

  function wire (el) {
    var section = el.querySelector('.emb-invoice')
    if (section) wireInvoice(section)
    var company = el.querySelector('.emb-company')
    if (company) wireStatement(company)
    wireConnect(el)
    var sync = el.querySelector('#qbo-sync')
    if (sync) {
      sync.addEventListener('click', function () {
        var out = el.querySelector('#qbo-result')
        sync.disabled = true
        out.textContent = 'Syncing…'
        api('POST', prefix + '/quickbooks/sync', {}).then(function (res) {
          sync.disabled = false
          if (!res.ok) { out.textContent = errorText(res); return }
          // The pod renders again, so what it says is waiting is what is waiting now; the documents posted go under it.
          load(res.data.message, null, function (fresh) {
            var target = fresh.querySelector('#qbo-result')
            if (!target) return
            var list = document.createElement('ul')
            res.data.posted.concat(res.data.failed).forEach(function (d) {
              var li = document.createElement('li')
              if (d.url) { var a = document.createElement('a'); a.href = d.url; a.target = '_blank'; a.rel = 'noopener'; a.textContent = d.label; li.appendChild(a) } else li.textContent = d.label
              if (d.error) li.appendChild(document.createTextNode(': ' + d.error + (d.hint ? ' ' + d.hint : '')))
              list.appendChild(li)
            })
            if (list.children.length > 0) target.appendChild(list)
          })
        })
      })
    }
  }

  function wireConnect (el) {
    var button = el.querySelector('#qbo-connect')
    if (!button) return
    button.addEventListener('click', function () {
      var out = el.querySelector('#qbo-result')
      // Open the window inside the click, or the browser blocks it as a pop-up; then point it at Intuit.
      var win = window.open('', '_blank')
      api('POST', prefix + '/quickbooks/connect', {}).then(function (res) {
        if (!res.ok) { if (win) win.close(); out.textContent = errorText(res); return }
        if (!win) { out.textContent = 'Allow pop-ups for Settle, then try again.'; return }
        win.opener = null
        win.location.href = res.data.url
        out.textContent = 'Finish signing in to QuickBooks in the new window, then reopen this pod.'
      })
    })
  }

  function wireInvoice (section) {
    var invoiceId = section.dataset.invoiceId
    wireCharge(section, 'invoice', function (form, amount) {
      return { invoiceId: invoiceId, paymentMethodId: form.querySelector('#charge-method').value, amount: amount }
    }, function () { return [invoiceId] })
    var payLink = section.querySelector('#pay-link')
    if (payLink) {
      payLink.addEventListener('click', function () {
        var out = section.querySelector('#pay-link-out')
        var box = section.querySelector('#pay-link-box')
        payLink.disabled = true
        api('POST', prefix + '/invoice/pay-link', { invoiceId: invoiceId }).then(function (res) {
          payLink.disabled = false
          if (!res.ok) { out.textContent = errorText(res); return }
          // Validity as the server states it: PAY_LINK_DAYS, the one setting every link follows.
          var validity = 'Valid for ' + res.data.validDays + ' days, until ' + res.data.validUntil + '.'
          out.textContent = 'Pay link ready. ' + validity
          box.hidden = false
          box.querySelector('#pay-link-url').value = res.data.url
          box.querySelector('#pay-link-validity').textContent = validity
          var subject = 'Invoice ' + section.dataset.number + ': pay online'
          var body = 'Hello ' + section.dataset.customer + ',\n\nYou can pay invoice ' + section.dataset.number + ' securely here:\n' + res.data.url + '\n\n' + validity + '\n'
          box.querySelector('#pay-link-email').href = 'mailto:?subject=' + encodeURIComponent(subject) + '&body=' + encodeURIComponent(body)
        })
      })
      var copy = section.querySelector('#pay-link-copy')
      copy.addEventListener('click', function () {
        var field = section.querySelector('#pay-link-url')
        var out = section.querySelector('#pay-link-out')
        var done = function () { out.textContent = 'Copied the pay link.' }
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(field.value).then(done, function () { field.select(); out.textContent = 'Press Ctrl+C to copy the selected link.' })
        } else { field.select(); out.textContent = 'Press Ctrl+C to copy the selected link.' }
      })
    }
  }

  // The company tab's statement payment: the ticked invoices in one charge; the amount follows the ticks.
  function wireStatement (section) {
    var form = section.querySelector('#charge-form')
    if (!form) return
    var boxes = Array.prototype.slice.call(section.querySelectorAll('input[name="invoiceIds"]'))
    var ticked = function () { return boxes.filter(function (b) { return b.checked }) }
    boxes.forEach(function (box) {
      box.addEventListener('change', function () {
        var sum = ticked().reduce(function (s, b) { return s + Number(b.dataset.cents) }, 0)
        form.querySelector('#charge-amount').value = (sum / 100).toFixed(2)
      })
    })
    wireCharge(section, 'company', function (form, amount) {
      return { customerId: form.dataset.customerId, invoiceIds: ticked().map(function (b) { return b.value }), paymentMethodId: form.querySelector('#charge-method').value, amount: amount }
    }, function (chosen) { return chosen.invoiceIds })
  }

  // Review, confirm, charge, then the live result: the same steps on the invoice pod and the company tab.
  // Once the charge has a result (paid, on its way, or declined) the page renders again from the server,
  // so its status, balance, history and form are current, with the result in the status line; a decline
  // leaves the form there to try another method. `changed` names the invoices the charge touched, for
  // the other frames on the screen.
  function wireCharge (section, path, bodyOf, changed) {
    var form = section.querySelector('#charge-form')
    var result = section.querySelector('#charge-result')
    var confirmBox = section.querySelector('#charge-confirm')
    var chosen = null
    if (!form) return
    var amountInput = form.querySelector('#charge-amount')
    amountInput.value = (Number(amountInput.dataset.default) / 100).toFixed(2)
    form.addEventListener('submit', function (e) {
      e.preventDefault()
      var amount = cents(amountInput.value)
      if (amount === null || amount <= 0) { result.textContent = 'Enter an amount like 125.00.'; amountInput.focus(); return }
      chosen = bodyOf(form, amount)
      api('POST', prefix + '/' + path + '/quote', chosen).then(function (res) {
        if (!res.ok) { result.textContent = errorText(res); return }
        chosen.expectedSurcharge = res.data.surchargeCents
        result.textContent = ''
        section.querySelector('#charge-confirm-text').textContent = res.data.text
        var lines = section.querySelector('#charge-confirm-lines')
        if (lines) {
          lines.textContent = ''
          ;(res.data.lines || []).forEach(function (line) { var li = document.createElement('li'); li.textContent = line; lines.appendChild(li) })
        }
        form.hidden = true
        confirmBox.hidden = false
        section.querySelector('#charge-go').focus()
      })
    })
    section.querySelector('#charge-cancel').addEventListener('click', function () { confirmBox.hidden = true; form.hidden = false; amountInput.focus() })
    section.querySelector('#charge-go').addEventListener('click', function (e) {
      e.target.disabled = true
      result.textContent = 'Charging…'
      api('POST', prefix + '/' + path + '/charge', chosen).then(function (res) {
        confirmBox.hidden = true
        // A payment already in flight (this click's, after a lost answer, or another) is shown as processing, not as an error.
        if (!res.data || !res.data.attempt) { result.textContent = errorText(res); form.hidden = false; e.target.disabled = false; return }
        show(res.data.attempt, res.data.amountText || '')
        if (['succeeded', 'failed'].indexOf(res.data.attempt.status) < 0) poll(res.data.attempt.id, 0)
      }).catch(function () {
        // No answer (Settle restarting): the payment may be under way; the pod, reloaded, shows it as processing.
        confirmBox.hidden = true
        result.textContent = 'Settle did not answer; checking whether the payment went through…'
        load(result.textContent)
      })
    })
    function show (attempt, amountText) {
      result.className = 'emb-result result-' + attempt.status
      var words = { succeeded: 'Paid: ' + amountText + ' charged.', failed: 'Declined.', processing: 'Processing: ' + amountText + ' submitted.', created: 'Processing…', unknown: 'Checking the result with the processor…' }
      result.textContent = (words[attempt.status] || attempt.statusLabel) + (attempt.explanation ? ' ' + attempt.explanation : '') + (attempt.nextStep ? ' Next: ' + attempt.nextStep : '')
      result.dataset.status = attempt.status
      if (['succeeded', 'processing', 'failed'].indexOf(attempt.status) >= 0) {
        load(result.textContent, attempt.status)
        announce(changed(chosen))
      }
    }
    function poll (id, n) {
      if (n > 30) return
      setTimeout(function () {
        api('GET', prefix + '/attempts/' + id).then(function (res) {
          if (!res.ok) return
          show(res.data.attempt, res.data.amountText)
          if (!res.data.done) poll(id, n + 1)
        })
      }, 1000)
    }
  }

  if (session !== null) { scheduleRenew(); load() } else if (system === 'connectwise') {
    if (window.parent === window) say('Open this page from ConnectWise: it needs the PSA to confirm who you are.', true)
    else toHost({ message: 'ready' })
  }
})()
