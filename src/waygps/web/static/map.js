/* WayGPS live map: plain JavaScript on Leaflet, fed by the WebSocket feed (docs/websocket.md).
 *
 * Exposes window.WayGPS = {map, markers, trails, devices, state, config, on(type, fn), token(), connect(), follow(id)}
 * so that other scripts (and tests) can read what the map shows and attach to it.
 */
(function () {
  "use strict";

  var TRAIL_POINTS = 100;
  var MOVING_KMH = 3;
  var BACKOFF_FIRST_MS = 1000;
  var BACKOFF_MAX_MS = 30000;
  var TOKEN_KEY = "waygps.token";

  var config = JSON.parse(document.getElementById("waygps-config").textContent);
  var el = function (id) { return document.getElementById(id); };

  // --- the map -------------------------------------------------------------------------------
  var map = L.map("map", { zoomControl: true, worldCopyJump: true }).setView([0, 0], 2);
  if (config.tiles) {
    L.tileLayer(config.tiles, { maxZoom: config.maxZoom || 19, attribution: config.attribution || "" }).addTo(map);
  }

  var devices = {};   // id -> {id, plate, online, lat, lon, speed, course, ignition, battery, fix, protocol, state}
  var markers = {};   // id -> L.Marker
  var trails = {};    // id -> L.Polyline
  var listeners = {}; // message type (or "*") -> [fn]
  var state = { connection: "idle", error: null, followed: null, fitted: false, messages: 0, everConnected: false };
  var socket = null;
  var retryTimer = null;
  var backoff = BACKOFF_FIRST_MS;

  function on(type, fn) { (listeners[type] = listeners[type] || []).push(fn); }
  function emit(type, value) {
    (listeners[type] || []).concat(listeners["*"] || []).forEach(function (fn) {
      try { fn(value, type); } catch (e) { console.error("WayGPS listener failed", e); }
    });
  }

  function deviceState(d) {
    if (!d.online) { return "offline"; }
    if (d.speed != null && d.speed > MOVING_KMH) { return "moving"; }
    if (d.ignition === false) { return "off"; }
    return "idle";
  }

  var STATE_NAMES = { moving: "moving", idle: "stopped, ignition on", off: "ignition off", offline: "offline" };

  function iconFor(d) {
    var rotation = d.course == null ? 0 : Number(d.course);
    var shape = d.course == null
      ? '<circle class="arrow" cx="10" cy="10" r="7"/>'
      : '<path class="arrow" d="M10 1 L17 18 L10 14 L3 18 Z"/>';
    var html = '<svg width="20" height="20" viewBox="0 0 20 20" style="transform: rotate(' + rotation + 'deg)">' +
      shape + '</svg><span class="label"></span>';
    return L.divIcon({ className: "vehicle-icon", html: html, iconSize: [20, 20], iconAnchor: [10, 10],
                       popupAnchor: [0, -10] });
  }

  function text(value, suffix) {
    if (value == null || value === "") { return "—"; }
    return String(value) + (suffix || "");
  }

  function localTime(iso) {
    if (!iso) { return "—"; }
    var date = new Date(iso);
    return isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
  }

  function popupFor(d) {
    var root = document.createElement("div");
    root.className = "popup";
    var title = document.createElement("strong");
    title.textContent = d.plate || d.id;
    root.appendChild(title);
    var list = document.createElement("dl");
    [["IMEI", d.id], ["State", STATE_NAMES[d.state]], ["Speed", text(d.speed, " km/h")],
     ["Course", text(d.course, "°")], ["Ignition", d.ignition == null ? "—" : (d.ignition ? "on" : "off")],
     ["Battery", text(d.battery)], ["Last fix", localTime(d.fix)], ["Protocol", text(d.protocol)]]
      .forEach(function (row) {
        var dt = document.createElement("dt"); dt.textContent = row[0];
        var dd = document.createElement("dd"); dd.textContent = row[1];
        list.appendChild(dt); list.appendChild(dd);
      });
    root.appendChild(list);
    return root;
  }

  function draw(d) {
    d.state = deviceState(d);
    if (d.lat == null || d.lon == null) { renderList(); return; }
    var marker = markers[d.id];
    if (!marker) {
      marker = L.marker([d.lat, d.lon], { icon: iconFor(d), keyboard: false });
      marker.bindPopup(function () { return popupFor(d); });
      marker.on("click", function () { follow(d.id); });
      marker.addTo(map);
      markers[d.id] = marker;
    } else {
      marker.setLatLng([d.lat, d.lon]);
      marker.setIcon(iconFor(d));
      if (marker.isPopupOpen()) { marker.setPopupContent(popupFor(d)); }
    }
    var node = marker.getElement();
    if (node) {
      node.setAttribute("data-state", d.state);
      node.setAttribute("data-id", d.id);
      node.querySelector(".label").textContent = d.plate || d.id;
    }
    if (state.followed === d.id) { map.panTo([d.lat, d.lon]); }
    renderList();
  }

  function addTrailPoint(d) {
    if (d.lat == null || d.lon == null) { return; }
    var trail = trails[d.id];
    if (!trail) {
      trail = L.polyline([], { color: "#2563eb", weight: 3, opacity: 0.55 }).addTo(map);
      trails[d.id] = trail;
    }
    var points = trail.getLatLngs();
    var last = points[points.length - 1];
    if (last && last.lat === d.lat && last.lng === d.lon) { return; }
    points.push(L.latLng(d.lat, d.lon));
    while (points.length > TRAIL_POINTS) { points.shift(); }
    trail.setLatLngs(points);
  }

  // --- the side list --------------------------------------------------------------------------
  var listPending = false;
  function renderList() {
    if (listPending) { return; }
    listPending = true;
    window.requestAnimationFrame(function () { listPending = false; renderListNow(); });
  }

  function renderListNow() {
    var query = el("search").value.trim().toLowerCase();
    var ids = Object.keys(devices).sort(function (a, b) {
      return String(devices[a].plate || a).localeCompare(String(devices[b].plate || b));
    });
    var online = 0;
    var list = el("devices");
    list.textContent = "";
    ids.forEach(function (id) {
      var d = devices[id];
      if (d.online) { online += 1; }
      if (query && String(d.plate || "").toLowerCase().indexOf(query) < 0 && id.indexOf(query) < 0) { return; }
      var item = document.createElement("li");
      item.setAttribute("data-id", id);
      if (state.followed === id) { item.className = "followed"; }
      var dot = document.createElement("span");
      dot.className = "dot st-" + d.state;
      dot.title = STATE_NAMES[d.state];
      var names = document.createElement("div");
      var plate = document.createElement("div"); plate.className = "plate"; plate.textContent = d.plate || "—";
      var imei = document.createElement("div"); imei.className = "imei"; imei.textContent = id;
      names.appendChild(plate); names.appendChild(imei);
      item.appendChild(dot); item.appendChild(names);
      item.addEventListener("click", function () { follow(id); });
      list.appendChild(item);
    });
    el("online-count").textContent = String(online);
    el("total-count").textContent = String(ids.length);
  }

  function follow(id) {
    state.followed = id;
    var d = devices[id];
    if (d && d.lat != null) {
      map.setView([d.lat, d.lon], Math.max(map.getZoom(), 15));
      if (markers[id]) { markers[id].openPopup(); }
    }
    renderList();
    emit("follow", id);
  }
  map.on("dragstart", function () { if (state.followed) { state.followed = null; renderList(); } });
  el("search").addEventListener("input", renderList);

  function fitOnce() {
    if (state.fitted) { return; }
    var points = Object.keys(markers).map(function (id) { return markers[id].getLatLng(); });
    if (!points.length) { return; }
    state.fitted = true;
    if (points.length === 1) { map.setView(points[0], 14); } else { map.fitBounds(L.latLngBounds(points).pad(0.2)); }
  }

  // --- messages ------------------------------------------------------------------------------
  function device(id) {
    var d = devices[id];
    if (!d) { d = devices[id] = { id: id, online: false, state: "offline" }; }
    return d;
  }

  function onInitialState(message) {
    (message.mobiles || []).forEach(function (m) {
      var d = device(String(m.id || m.mobile_id));
      d.plate = m.patente; d.online = !!m.online; d.lat = m.ultimo_lat; d.lon = m.ultimo_lon;
      d.speed = m.velocidad; d.course = m.rumbo; d.ignition = m.ignicion; d.battery = m.bateria;
      d.fix = m.fecha_gps; d.protocol = m.protocolo; d.updated = m.ultima_actualizacion;
      draw(d);
      addTrailPoint(d);
    });
    fitOnce();
  }

  function onUpdate(message) {
    var data = message.data || {};
    var d = device(String(message.mobile_id));
    d.lat = data.latitud; d.lon = data.longitud; d.speed = data.velocidad; d.course = data.rumbo;
    d.ignition = data.ignicion; d.fix = data.fecha_gps; d.online = true;
    if (data.bateria != null) { d.battery = data.bateria; }
    if (data.protocolo) { d.protocol = data.protocolo; }
    draw(d);
    addTrailPoint(d);
    fitOnce();
  }

  function onStatus(message) {
    var d = device(String(message.mobile_id));
    d.online = message.status === "conectado";
    if (message.protocolo) { d.protocol = message.protocolo; }
    if (message.status === "error") { alertLine((d.plate || d.id) + ": connection ended: " + (message.message || "error")); }
    draw(d);
  }

  function alertLine(textValue) {
    var item = document.createElement("li");
    item.textContent = new Date().toLocaleTimeString() + " " + textValue;
    var alerts = el("alerts");
    alerts.insertBefore(item, alerts.firstChild);
    while (alerts.children.length > 20) { alerts.removeChild(alerts.lastChild); }
  }

  function onMessage(event) {
    var message;
    try { message = JSON.parse(event.data); } catch (e) { return; }
    state.messages += 1;
    switch (message.type) {
      case "initial_state": onInitialState(message); break;
      case "gps_update": onUpdate(message); break;
      case "mobile_status": onStatus(message); break;
      case "system_alert":
        alertLine((message.mobile_id ? (device(message.mobile_id).plate || message.mobile_id) + ": " : "") +
                  (message.message || message.alert_type));
        break;
      case "error": alertLine("server: " + message.message); break;
      default: break;
    }
    emit(message.type, message);
  }

  // --- connection -------------------------------------------------------------------------------
  function setConnection(value, label) {
    state.connection = value;
    var node = el("connection");
    node.setAttribute("data-state", value);
    node.textContent = label || value;
    emit("connection", value);
  }

  function showError(message) {
    state.error = message;
    el("error-text").textContent = message;
    el("error").hidden = false;
    setConnection("error", "not connected");
  }

  function readToken() {
    var match = /(?:^|[#&])token=([^&]*)/.exec(window.location.hash);
    if (match) {
      var value = decodeURIComponent(match[1]);
      try { window.sessionStorage.setItem(TOKEN_KEY, value); } catch (e) { /* storage disabled */ }
      // Keep the token out of the address bar (screenshots, bookmarks, shared links).
      if (window.history && window.history.replaceState) {
        window.history.replaceState(null, "", window.location.pathname + window.location.search);
      }
      return value;
    }
    try { return window.sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }

  var token = readToken();

  function askToken() {
    el("error").hidden = true;
    el("token-form").hidden = false;
    el("token-input").focus();
  }

  el("token-form").addEventListener("submit", function (event) {
    event.preventDefault();
    token = el("token-input").value;
    try { window.sessionStorage.setItem(TOKEN_KEY, token); } catch (e) { /* storage disabled */ }
    el("token-form").hidden = true;
    state.everConnected = false;
    connect();
  });
  el("error-retry").addEventListener("click", function () { el("error").hidden = true; connect(); });
  el("error-token").addEventListener("click", askToken);

  function socketURL() {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    return scheme + window.location.host + config.wsPath + "?token=" + encodeURIComponent(token);
  }

  function connect() {
    if (!token) { askToken(); return; }
    if (retryTimer) { window.clearTimeout(retryTimer); retryTimer = null; }
    if (socket) { socket.onclose = null; socket.close(); }
    state.error = null;
    el("error").hidden = true;
    setConnection(state.everConnected ? "reconnecting" : "connecting");
    var opened = false;
    var ws = new WebSocket(socketURL());
    socket = ws;
    ws.onopen = function () {
      opened = true;
      state.everConnected = true;
      backoff = BACKOFF_FIRST_MS;
      setConnection("connected");
      // Subscriptions are per connection: say them again after a reconnection.
      (WayGPS.subscriptions || []).forEach(function (id) {
        ws.send(JSON.stringify({ type: "subscribe_mobile", mobile_id: id }));
      });
    };
    ws.onmessage = onMessage;
    ws.onclose = function (event) {
      if (socket !== ws) { return; }
      socket = null;
      if (!opened && !state.everConnected) {
        // Refused during the handshake (the browser does not say why): is the server there at all?
        window.fetch("/health", { cache: "no-store" }).then(function () {
          showError("The server refused the connection: the token is wrong, or too many connections use it.");
        }, function () {
          showError("The server cannot be reached.");
        });
        return;
      }
      Object.keys(devices).forEach(function (id) { devices[id].online = false; draw(devices[id]); });
      var delay = Math.min(BACKOFF_MAX_MS, backoff) * (0.75 + Math.random() * 0.5);
      backoff = Math.min(BACKOFF_MAX_MS, backoff * 2);
      setConnection("reconnecting", "reconnecting in " + Math.round(delay / 1000) + " s");
      retryTimer = window.setTimeout(connect, delay);
      emit("closed", { code: event.code, reason: event.reason });
    };
  }

  function subscribe(id) {
    WayGPS.subscriptions.push(String(id));
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify({ type: "subscribe_mobile", mobile_id: String(id) }));
    }
  }

  var WayGPS = window.WayGPS = {
    map: map, markers: markers, trails: trails, devices: devices, state: state, config: config,
    subscriptions: [], on: on, follow: follow, connect: connect, subscribe: subscribe,
    token: function () { return token; },
    position: function (id) {
      var marker = markers[id];
      if (!marker) { return null; }
      var p = marker.getLatLng();
      return { lat: p.lat, lon: p.lng, state: devices[id].state };
    }
  };

  connect();
}());
