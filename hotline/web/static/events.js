// The websocket event stream (GET /api/v1/events): reconnects with ?last_event_id=N, where N
// is the newest id seen (the hello frame's last_event_id counts too).
// Every frame received is also pushed to window.__hotlineEvents (for tests and diagnostics).

window.__hotlineEvents = window.__hotlineEvents || [];

const STATE_LABELS = {
  connecting: "Подключение…",
  online: "На связи",
  offline: "Нет связи — переподключение…",
  ended: "Сессия завершена",
};

export class EventStream {
  constructor({ onEvent, onState } = {}) {
    this.onEvent = onEvent || (() => {});
    this.onState = onState || (() => {});
    this.lastEventId = null;
    this.attempt = 0;
    this.ws = null;
    this.stopped = false;
    this.state = "connecting";
    this.pingTimer = null;
  }

  start() {
    this.stopped = false;
    this._open();
    return this;
  }

  stop() {
    this.stopped = true;
    clearInterval(this.pingTimer);
    if (this.ws) this.ws.close(1000, "bye");
  }

  _url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let url = `${scheme}//${location.host}/api/v1/events`;
    if (this.lastEventId !== null) url += `?last_event_id=${this.lastEventId}`;
    return url;
  }

  _setState(state) {
    this.state = state;
    this.onState(state, STATE_LABELS[state] || state);
  }

  _open() {
    this._setState("connecting");
    let ws;
    try {
      ws = new WebSocket(this._url());
    } catch {
      this._retry();
      return;
    }
    this.ws = ws;
    ws.addEventListener("message", (message) => {
      let frame;
      try { frame = JSON.parse(message.data); } catch { return; }
      frame._rx = performance.now();
      window.__hotlineEvents.push(frame);
      if (typeof frame.id === "number") {
        this.lastEventId = Math.max(this.lastEventId ?? 0, frame.id);
      }
      if (frame.type === "hello") {
        // Where to resume from even if no numbered frame arrives before the next drop.
        if (typeof frame.last_event_id === "number") {
          this.lastEventId = Math.max(this.lastEventId ?? 0, frame.last_event_id);
        }
        this.attempt = 0;
        this._setState("online");
      }
      if (frame.type === "pong") return;
      try { this.onEvent(frame); } catch (exc) { console.error(exc); }
    });
    ws.addEventListener("close", (event) => {
      clearInterval(this.pingTimer);
      if (this.stopped) return;
      if (event.code === 4001) {
        this._setState("ended");
        location.assign("/login?next=" + encodeURIComponent(location.pathname));
        return;
      }
      this._retry();
    });
    ws.addEventListener("open", () => {
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => {
        if (ws.readyState === WebSocket.OPEN) ws.send("ping");
      }, 25000);
    });
  }

  _retry() {
    this._setState("offline");
    const base = Math.min(30000, 500 * 2 ** Math.min(this.attempt, 6));
    const delay = base / 2 + Math.random() * base / 2;
    this.attempt += 1;
    setTimeout(() => { if (!this.stopped) this._open(); }, delay);
  }
}

/** Connection indicator: <span id="conn" class="conn">. */
export function showConnection(state, label) {
  const el = document.getElementById("conn");
  if (!el) return;
  el.dataset.state = state;
  el.textContent = label;
}
