// The demo host: plays ConnectWise's side of the Hosted API for the frames on
// this page (ready → MessageFrameID, getMemberAuthentication, host events), so
// Settle's real embedded pages run here exactly as inside ConnectWise.
(function () {
  'use strict'
  // Loaded blocking in <head> so this listener exists before any frame can say "ready";
  // messages that arrive before the page is parsed wait in the queue.
  var queue = []
  var handle = null
  window.addEventListener('message', function (event) { if (handle === null) queue.push(event); else handle(event) })
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start)
  else start()

  function start () {
  var body = document.body
  var member = {
    site: body.dataset.site,
    companyid: body.dataset.companyId,
    memberid: body.dataset.memberId,
    memberHash: body.dataset.memberHash,
    memberContext: body.dataset.memberContext,
    memberEmail: body.dataset.memberEmail
  }
  var frames = []
  var nextEventId = 1
  var pending = {}
  var log = document.getElementById('host-log')

  function note (frame, text, kind) {
    if (log === null) return
    var li = document.createElement('li')
    li.className = kind || ''
    li.textContent = (frame ? '[' + frame.key + '] ' : '') + text
    log.appendChild(li)
    while (log.children.length > 60) log.removeChild(log.firstChild)
  }

  function send (frame, message) {
    // The frames are ours, on this origin; ConnectWise posts to the setup's origin the same way.
    frame.el.contentWindow.postMessage(JSON.stringify(message), location.origin)
  }

  function hostEvent (frame, name, data) {
    var id = nextEventId++
    return new Promise(function (resolve) {
      var timer = setTimeout(function () {
        delete pending[id]
        frame.el.dataset.hostEvent = name + ':unanswered'
        note(frame, name + ' was never answered: ConnectWise would hang here', 'bad')
        resolve(false)
      }, 8000)
      pending[id] = function () { clearTimeout(timer); resolve(true) }
      send(frame, { event: name, _id: id, data: data || {} })
      note(frame, 'host → frame: ' + name + ' (_id ' + id + ')')
    })
  }

  function register (el) {
    var frame = { el: el, key: el.dataset.hosted, id: 'settle-' + el.dataset.hosted + '-' + Math.random().toString(36).slice(2, 8) }
    el.dataset.handshake = 'waiting'
    frames.push(frame)
    return frame
  }

  document.querySelectorAll('iframe[data-hosted]').forEach(register)

  handle = function (event) {
    if (event.origin !== location.origin) return
    var frame = frames.find(function (f) { return f.el.contentWindow === event.source })
    if (frame === undefined) return
    var data
    try { data = typeof event.data === 'string' ? JSON.parse(event.data) : event.data } catch { return }
    if (data === null || typeof data !== 'object') return

    if (data.message === 'ready') {
      note(frame, 'frame → host: ready')
      send(frame, { MessageFrameID: frame.id })
      frame.el.dataset.handshake = 'ready'
      note(frame, 'host → frame: MessageFrameID ' + frame.id)
      hostEvent(frame, 'onLoad', { screen: body.dataset.screen }).then(function (ok) {
        if (ok) { frame.el.dataset.hostEvent = 'onLoad:success'; note(frame, 'frame answered onLoad: success', 'good') }
      })
      return
    }
    if (typeof data.hosted_request === 'string') {
      if (data.frameID !== undefined && data.frameID !== frame.id) { note(frame, 'ignored a request with another frame id', 'bad'); return }
      var name = data.hosted_request
      note(frame, 'frame → host: ' + name)
      var reply = { response: name.toLowerCase(), data: {} }
      if (name === 'getMemberAuthentication') {
        reply.data = member
        frame.el.dataset.handshake = 'authenticated'
      }
      if (name === 'refreshScreen') {
        // As ConnectWise re-reads the record: the same record, fresh from the server.
        setTimeout(function () {
          var url = new URL(location.href)
          if (body.dataset.recordId) url.searchParams.set('id', body.dataset.recordId)
          location.assign(url.toString())
        }, 1500)
      }
      send(frame, reply)
      note(frame, 'host → frame: ' + reply.response + (name === 'getMemberAuthentication' ? ' (' + member.memberid + ')' : ''))
      return
    }
    if (typeof data.event === 'string' && data._id !== undefined) {
      var done = pending[data._id]
      if (done !== undefined && data.result === 'success') { delete pending[data._id]; done() }
      return
    }
    if (typeof data.message === 'string') note(frame, 'frame → host: ' + data.message)
  }
  queue.splice(0).forEach(handle)

  // Toolbar button: a modal dialog that loads its frame on first open, as ConnectWise does.
  document.querySelectorAll('[data-dialog]').forEach(function (button) {
    button.addEventListener('click', function () {
      var dialog = document.getElementById(button.dataset.dialog)
      if (dialog === null) return
      var iframe = dialog.querySelector('iframe[data-lazy-src]')
      if (iframe !== null && !iframe.getAttribute('src')) iframe.setAttribute('src', iframe.dataset.lazySrc)
      dialog.showModal()
    })
  })
  document.querySelectorAll('[data-close]').forEach(function (button) {
    button.addEventListener('click', function () { var d = document.getElementById(button.dataset.close); if (d !== null) d.close() })
  })

  // Tabs on the company screen.
  document.querySelectorAll('[data-tab]').forEach(function (tab) {
    tab.addEventListener('click', function () {
      document.querySelectorAll('[data-tab]').forEach(function (other) {
        other.setAttribute('aria-selected', String(other === tab))
        var panel = document.getElementById(other.dataset.tab)
        if (panel !== null) panel.hidden = other !== tab
      })
    })
  })

  // Save: every loaded frame must answer beforeSave before the host saves.
  var save = document.getElementById('host-save')
  var saved = document.getElementById('host-saved')
  if (save !== null) {
    save.addEventListener('click', function () {
      var ready = frames.filter(function (f) { return f.el.dataset.handshake !== 'waiting' })
      Promise.all(ready.map(function (f) { return hostEvent(f, 'beforeSave', {}) })).then(function (results) {
        if (saved !== null) saved.textContent = results.every(Boolean) ? 'Saved' : 'Save held up by a frame'
      })
    })
  }
  }
})()
