/*
 * WayGPS track replay: a panel on a Leaflet map to pick a device and a day, draw its track,
 * list its trips and play it back with a marker moving along the track.
 *
 *   WayGPSReplay.attach(map, {token: "...", apiBase: "/api/v1"})
 *
 * The token defaults to sessionStorage["waygps.token"] (what the map page keeps), apiBase to
 * "/api/v1". Needs Leaflet (window.L) loaded first. Data comes from the HTTP API:
 * /devices, /devices/{imei}/positions?format=geojson and /devices/{imei}/trips.
 */
(function (global) {
  "use strict";

  var SPEEDS = [1, 10, 30, 60, 300, 900];

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") { node.textContent = attrs[key]; } else { node.setAttribute(key, attrs[key]); }
    });
    (children || []).forEach(function (child) { node.appendChild(child); });
    return node;
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function isoDay(date) {
    return date.getUTCFullYear() + "-" + pad(date.getUTCMonth() + 1) + "-" + pad(date.getUTCDate());
  }

  function clock(ms) {
    var d = new Date(ms);
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + " UTC";
  }

  function duration(seconds) {
    var s = Math.round(seconds);
    return Math.floor(s / 3600) + ":" + pad(Math.floor((s % 3600) / 60)) + ":" + pad(s % 60);
  }

  /* Index of the last sample at or before time t (samples sorted by time). */
  function indexAt(times, t) {
    var lo = 0, hi = times.length - 1;
    if (t <= times[0]) { return 0; }
    if (t >= times[hi]) { return hi; }
    while (lo < hi - 1) {
      var mid = (lo + hi) >> 1;
      if (times[mid] <= t) { lo = mid; } else { hi = mid; }
    }
    return lo;
  }

  /* The position at time t, interpolated between the samples around it. */
  function positionAt(track, t) {
    var i = indexAt(track.times, t);
    var a = track.latlngs[i];
    if (i + 1 >= track.times.length) { return a; }
    var b = track.latlngs[i + 1];
    var span = track.times[i + 1] - track.times[i];
    var f = span > 0 ? Math.min(1, Math.max(0, (t - track.times[i]) / span)) : 0;
    return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f];
  }

  function Replay(map, options) {
    options = options || {};
    this.map = map;
    this.apiBase = (options.apiBase || "/api/v1").replace(/\/$/, "");
    this.token = options.token || null;
    this.track = null;
    this.layer = global.L.layerGroup().addTo(map);
    this.marker = null;
    this.playing = false;
    this.now = 0;
    this.timer = null;
    this.lastTick = 0;
    this.build();
  }

  Replay.prototype.authHeaders = function () {
    var token = this.token;
    if (!token) {
      try { token = global.sessionStorage.getItem("waygps.token"); } catch (e) { token = null; }
    }
    return token ? {"Authorization": "Bearer " + token} : {};
  };

  Replay.prototype.get = function (path) {
    return global.fetch(this.apiBase + path, {headers: this.authHeaders()}).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) { throw new Error((body && body.message) || ("HTTP " + response.status)); }
        return body;
      });
    });
  };

  Replay.prototype.build = function () {
    var self = this;
    this.device = el("select", {"class": "wg-replay-device", "aria-label": "device"});
    this.day = el("input", {"type": "date", "class": "wg-replay-day", "aria-label": "day"});
    this.day.value = isoDay(new Date());
    this.load = el("button", {"type": "button", "class": "wg-replay-load", "text": "Show"});
    this.play = el("button", {"type": "button", "class": "wg-replay-play", "text": "\u25B6", "disabled": "disabled",
                              "aria-label": "play"});
    this.slider = el("input", {"type": "range", "class": "wg-replay-slider", "min": "0", "max": "1000", "value": "0",
                               "disabled": "disabled", "aria-label": "time"});
    this.speed = el("select", {"class": "wg-replay-speed", "aria-label": "speed"});
    SPEEDS.forEach(function (s) { self.speed.appendChild(el("option", {"value": String(s), "text": s + "\u00D7"})); });
    this.speed.value = "60";
    this.time = el("span", {"class": "wg-replay-time", "text": ""});
    this.status = el("div", {"class": "wg-replay-status", "text": ""});
    this.trips = el("ol", {"class": "wg-replay-trips"});
    this.panel = el("div", {"class": "wg-replay leaflet-bar"}, [
      el("div", {"class": "wg-replay-title", "text": "Replay"}),
      el("div", {"class": "wg-replay-row"}, [this.device, this.day, this.load]),
      el("div", {"class": "wg-replay-row"}, [this.play, this.slider, this.speed]),
      el("div", {"class": "wg-replay-row"}, [this.time]),
      this.status,
      this.trips,
    ]);
    var Control = global.L.Control.extend({
      options: {position: "topright"},
      onAdd: function () { return self.panel; },
    });
    this.control = new Control();
    this.control.addTo(this.map);
    if (global.L.DomEvent) {
      global.L.DomEvent.disableClickPropagation(this.panel);
      global.L.DomEvent.disableScrollPropagation(this.panel);
    }
    this.load.addEventListener("click", function () { self.show(); });
    this.play.addEventListener("click", function () { self.toggle(); });
    this.slider.addEventListener("input", function () {
      if (!self.track) { return; }
      self.seek(self.track.start + (self.track.end - self.track.start) * Number(self.slider.value) / 1000);
    });
    this.refreshDevices();
  };

  Replay.prototype.say = function (text) { this.status.textContent = text; };

  Replay.prototype.refreshDevices = function () {
    var self = this;
    return this.get("/devices").then(function (body) {
      var selected = self.device.value;
      self.device.innerHTML = "";
      body.devices.forEach(function (d) {
        var label = d.patente ? d.patente + " (" + d.mobile_id + ")" : d.mobile_id;
        self.device.appendChild(el("option", {"value": d.mobile_id, "text": label}));
      });
      if (selected) { self.device.value = selected; }
      self.say(body.devices.length ? "" : "no devices for this token");
    }).catch(function (e) { self.say("devices: " + e.message); });
  };

  Replay.prototype.show = function () {
    var self = this;
    var imei = this.device.value;
    var day = this.day.value;
    if (!imei || !day) { this.say("pick a device and a day"); return Promise.resolve(); }
    var range = "from=" + encodeURIComponent(day) + "&to=" + encodeURIComponent(day);
    var base = "/devices/" + encodeURIComponent(imei);
    this.pause();
    this.say("loading\u2026");
    return Promise.all([
      this.get(base + "/positions?format=geojson&valid=true&" + range),
      this.get(base + "/trips?" + range),
    ]).then(function (results) {
      self.draw(results[0], results[1]);
    }).catch(function (e) { self.say(e.message); });
  };

  Replay.prototype.draw = function (geojson, trips) {
    var self = this;
    var L = global.L;
    this.layer.clearLayers();
    this.trips.innerHTML = "";
    var latlngs = [], times = [];
    geojson.features.forEach(function (f) {
      var t = Date.parse(f.properties.time);
      if (isNaN(t)) { return; }
      latlngs.push([f.geometry.coordinates[1], f.geometry.coordinates[0]]);
      times.push(t);
    });
    if (!latlngs.length) {
      this.track = null;
      this.play.setAttribute("disabled", "disabled");
      this.slider.setAttribute("disabled", "disabled");
      this.say("no positions that day");
      return;
    }
    this.track = {latlngs: latlngs, times: times, start: times[0], end: times[times.length - 1]};
    var line = L.polyline(latlngs, {color: "#2563eb", weight: 3, opacity: 0.8}).addTo(this.layer);
    this.marker = L.circleMarker(latlngs[0], {radius: 7, color: "#111", fillColor: "#f59e0b", fillOpacity: 1})
      .addTo(this.layer);
    this.map.fitBounds(line.getBounds(), {padding: [20, 20]});
    this.play.removeAttribute("disabled");
    this.slider.removeAttribute("disabled");
    this.say(latlngs.length + " points, " + trips.count + " trips");
    trips.trips.forEach(function (trip, i) {
      var start = Date.parse(trip.start.time), end = Date.parse(trip.end.time);
      var item = el("li", {"class": "wg-replay-trip", "tabindex": "0",
                           "text": clock(start).slice(0, 5) + "\u2013" + clock(end).slice(0, 5) + "  " +
                                   (trip.distance_m / 1000).toFixed(1) + " km  " + duration(trip.duration_s) +
                                   "  max " + Math.round(trip.max_speed_kmh) + " km/h"});
      item.addEventListener("click", function () { self.focusTrip(start, end); });
      self.trips.appendChild(item);
      L.circleMarker([trip.start.latitude, trip.start.longitude], {radius: 4, color: "#16a34a"})
        .bindTooltip("trip " + (i + 1) + " start").addTo(self.layer);
      L.circleMarker([trip.end.latitude, trip.end.longitude], {radius: 4, color: "#dc2626"})
        .bindTooltip("trip " + (i + 1) + " end").addTo(self.layer);
    });
    this.seek(this.track.start);
  };

  Replay.prototype.focusTrip = function (start, end) {
    if (!this.track) { return; }
    var a = indexAt(this.track.times, start), b = indexAt(this.track.times, end);
    var part = this.track.latlngs.slice(a, b + 1);
    if (part.length > 1) { this.map.fitBounds(global.L.latLngBounds(part), {padding: [20, 20]}); }
    this.seek(start);
  };

  Replay.prototype.seek = function (t) {
    if (!this.track) { return; }
    this.now = Math.min(this.track.end, Math.max(this.track.start, t));
    var span = this.track.end - this.track.start;
    this.slider.value = String(span > 0 ? Math.round((this.now - this.track.start) / span * 1000) : 0);
    this.marker.setLatLng(positionAt(this.track, this.now));
    this.time.textContent = clock(this.now);
  };

  Replay.prototype.toggle = function () { if (this.playing) { this.pause(); } else { this.start(); } };

  Replay.prototype.start = function () {
    var self = this;
    if (!this.track) { return; }
    if (this.now >= this.track.end) { this.seek(this.track.start); }
    this.playing = true;
    this.play.textContent = "\u23F8";
    this.play.setAttribute("aria-label", "pause");
    this.lastTick = Date.now();
    this.timer = global.setInterval(function () {
      var tick = Date.now();
      self.seek(self.now + (tick - self.lastTick) * Number(self.speed.value));
      self.lastTick = tick;
      if (self.now >= self.track.end) { self.pause(); }
    }, 100);
  };

  Replay.prototype.pause = function () {
    this.playing = false;
    if (this.timer !== null) { global.clearInterval(this.timer); this.timer = null; }
    this.play.textContent = "\u25B6";
    this.play.setAttribute("aria-label", "play");
  };

  Replay.prototype.detach = function () {
    this.pause();
    this.layer.remove();
    this.control.remove();
  };

  global.WayGPSReplay = {
    attach: function (map, options) { return new Replay(map, options); },
    positionAt: positionAt,
    indexAt: indexAt,
  };
})(window);
