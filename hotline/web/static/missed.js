// Missed calls ("Пропущенные"): the operator page's queue of abandoned calls to call back,
// and the administrator's overdue list. One renderer for both.
import { api, callerText, fmtDateTime, fmtDuration, h, toast } from "/static/common.js";

export const MISSED_STATES = {
  open: "ждёт перезвона",
  called_back: "перезвонили",
  called_again: "дозвонился сам",
  gave_up: "не дозвонились",
  no_number: "номер не определён",
  closed: "заявка закрыта",
};
const ATTEMPT_LABELS = { answered: "дозвонились", no_answer: "не ответил", busy: "занято" };

function pluralAttempts(n) {
  const tail = n % 10, tens = n % 100;
  if (tail === 1 && tens !== 11) return "попытка";
  if (tail >= 2 && tail <= 4 && (tens < 12 || tens > 14)) return "попытки";
  return "попыток";
}

export class MissedPanel {
  /** root: the element to fill; options: {user, state, onOpen(number), actions, onData} */
  constructor(root, { user, state = "open", onOpen = null, actions = true, onData = null } = {}) {
    this.root = root;
    this.user = user;
    this.state = state;
    this.onOpen = onOpen;
    this.actions = actions;
    this.onData = onData;
    this.timer = null;
    this.busy = new Set();
  }

  /** Reload soon (several events of one call come together). */
  refreshSoon(delay = 400) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.load().catch(() => {}), delay);
  }

  async load() {
    // A month back: an open missed call older than that is long overdue and handled elsewhere.
    const data = await api(`/api/v1/missed?state=${this.state}&days=31`);
    this.render(data);
    this.onData?.(data);
    return data;
  }

  render(data) {
    this.root.textContent = "";
    const count = this.root.closest("[data-missed]")?.querySelector(".missed-count");
    if (count) {
      count.textContent = String(data.total);
      count.hidden = data.total === 0;
    }
    if (!data.items.length) {
      this.root.append(h("p", { class: "muted small missed-empty" },
        this.state === "overdue" ? "Просроченных пропущенных вызовов нет."
          : "Пропущенных вызовов, ждущих перезвона, нет."));
      return;
    }
    this.root.append(h("ul", { class: "missed-list" }, data.items.map((item) => this.item(item))));
  }

  item(item) {
    const tried = item.failed_attempts;
    const stateText = MISSED_STATES[item.state] || item.state;
    return h("li", { class: `missed-item${item.overdue ? " overdue" : ""}`,
      dataset: { number: item.number, state: item.state } },
      h("div", { class: "missed-head" },
        h("button", { type: "button", class: "link", onclick: () => this.onOpen?.(item.number) },
          `№ ${item.number}`),
        h("span", { class: "muted small" }, fmtDateTime(item.created_at))),
      h("div", { class: "missed-caller" }, callerText(item.contact_phone || item.caller_number,
        "номер не определён")),
      h("div", { class: "small muted" },
        `Ждал ${fmtDuration(item.wait_s)}`,
        item.history.length ? ` · ранее обращался: ${item.history.length}` : " · ранее не обращался"),
      h("div", { class: "missed-badges" },
        h("span", { class: `badge missed-state missed-${item.state}` }, stateText),
        item.overdue ? h("span", { class: "badge missed-overdue" },
          `просрочен (до ${fmtDateTime(item.due_at)})`) : null,
        tried ? h("span", { class: "small muted missed-tries" },
          `${tried} ${pluralAttempts(tried)} из ${item.max_attempts}`) : null),
      item.answered_later ? h("div", { class: "small missed-later" },
        "Позже дозвонился: ", h("button", { type: "button", class: "link",
          onclick: () => this.onOpen?.(item.answered_later.number) },
        `№ ${item.answered_later.number}`)) : null,
      item.attempts.length ? h("ol", { class: "missed-attempts small" }, item.attempts.map((a) =>
        h("li", {}, `${fmtDateTime(a.at)} — ${ATTEMPT_LABELS[a.result] || a.result}`,
          a.source === "call" ? " (звонок со страницы)" : a.user ? ` (${a.user})` : ""))) : null,
      this.actions && item.state === "open" ? this.buttons(item) : null);
  }

  buttons(item) {
    const disabled = this.busy.has(item.number);
    return h("div", { class: "missed-actions" },
      h("button", { type: "button", class: "btn btn-primary btn-small missed-call",
        disabled: disabled || !this.user.extension,
        title: this.user.extension ? "Позвонит ваш телефон, затем гражданин"
          : "У пользователя не задан внутренний номер",
        onclick: () => this.callBack(item) }, "Перезвонить"),
      h("span", { class: "small muted" }, "Вручную:"),
      ...["no_answer", "busy", "answered"].map((result) => h("button", {
        type: "button", class: `btn btn-small missed-mark-${result}`, disabled,
        onclick: () => this.mark(item, result) }, ATTEMPT_LABELS[result])));
  }

  async callBack(item) {
    this.busy.add(item.number);
    try {
      await api(`/api/v1/requests/${item.number}/callback`, { method: "POST", body: {} });
      toast(`Звонок по заявке № ${item.number}: возьмите трубку — затем наберётся гражданин`);
    } catch (exc) {
      toast(exc.message, "error");
    } finally {
      this.busy.delete(item.number);
      this.refreshSoon(0);
    }
  }

  async mark(item, result) {
    this.busy.add(item.number);
    try {
      await api(`/api/v1/requests/${item.number}/callback/attempt`,
        { method: "POST", body: { result } });
    } catch (exc) {
      toast(exc.message, "error");
    } finally {
      this.busy.delete(item.number);
      this.refreshSoon(0);
    }
  }
}
