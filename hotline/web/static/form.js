// The request form (regulation §20 fields): client-side hints, server-side errors next to each
// field, save with PATCH + version (409 version_conflict shows both versions, never overwrites
// silently), read-only when closed, and the workflow actions (routing, deferred answer,
// call-back, urgent contact). The fields, their labels, groups, limits and hints are the
// request card the server serves (GET /api/v1/card, journal/card.py); this file only lays
// them out.

import {
  api, callerText, DATETIME_PLACEHOLDER, fmtDateTime, h, isoFromRuDate, levelText, ruDateInput,
  smoLabel, statusBadge, STATUS_LABELS, toast,
} from "/static/common.js";

// ---------------------------------------------------------------- client-side checks
export function digitsOf(value) {
  return String(value || "").replace(/\D/g, "");
}

export function enpCheckDigit(first15) {
  const rev = first15.split("").reverse();
  const odd = rev.filter((_, i) => i % 2 === 0).reverse().join("");
  const even = rev.filter((_, i) => i % 2 === 1).reverse().join("");
  const combined = even + String(Number(odd) * 2);
  const total = combined.split("").reduce((sum, d) => sum + Number(d), 0);
  return (10 - (total % 10)) % 10;
}

export function checkEnp(value) {
  const raw = value.trim();
  if (!raw) return { error: null };
  const digits = digitsOf(raw);
  if (digits.length !== 16 || /[^\d\s-]/.test(raw)) {
    return { error: "ЕНП должен состоять из 16 цифр" };
  }
  if (enpCheckDigit(digits.slice(0, 15)) !== Number(digits[15])) {
    return { warning: "Контрольная цифра ЕНП не сходится — проверьте номер полиса" };
  }
  return { error: null };
}

export function checkSnils(value) {
  const raw = value.trim();
  if (!raw) return { error: null };
  if (digitsOf(raw).length !== 11 || /[^\d\s-]/.test(raw)) {
    return { error: "СНИЛС должен состоять из 11 цифр (XXX-XXX-XXX YY)" };
  }
  return { error: null };
}

export function checkPhone(value) {
  const raw = value.trim();
  if (!raw) return { error: null };
  let digits = digitsOf(raw);
  if (digits.length === 11 && (digits[0] === "8" || digits[0] === "7")) digits = digits.slice(1);
  if (digits.length !== 10 || /[^\d\s()+-]/.test(raw)) {
    return { error: "Телефон: 10 цифр после +7 или 8, например +7 916 123-45-67" };
  }
  return { error: null };
}

// ---------------------------------------------------------------- the fields
// What the page adds to the served card: the format checks by the field's type (a hint while
// typing; the server checks again) and the layout.
const CHECKS = { phone: checkPhone, enp: checkEnp, snils: checkSnils };
// Labels of the workflow actions' own parameters, for their errors; card fields are labelled
// by the card.
const ACTION_LABELS = {
  version: "Версия",
  smo: "СМО",
  note: "Пояснение",
  due_at: "Срок ответа",
  number: "Номер",
  to: "Направление",
};
// Values a field may hold beyond the choices an editor has (set by the workflow actions).
const OTHER_VALUES = { status: STATUS_LABELS };

/** The form's fields (those of the card with a fieldset) and the labels of all of them. */
function formOf(card) {
  const fields = card.fields.filter((f) => f.group).map((f) => ({
    ...f, check: CHECKS[f.type], wide: f.input === "textarea",
  }));
  const labels = { ...ACTION_LABELS,
    ...Object.fromEntries(card.fields.map((f) => [f.name, f.label])) };
  return { groups: card.groups, fields, labels };
}

function normalize(field, value) {
  if (field.type === "bool") return Boolean(value);
  if (value === undefined || value === null) return null;
  const text = String(value).trim();
  if (!text) return null;
  if (field.type === "enp") return digitsOf(text);
  if (field.type === "optional_bool") {
    return text === "true" ? true : text === "false" ? false : null;
  }
  return text;
}

// ---------------------------------------------------------------- dialogs
/** A modal with fields; ``run(values)`` may throw ApiError with ``fields`` shown inline. */
export function actionDialog({ title, text, fields = [], submit = "Подтвердить", run, danger,
  labels = ACTION_LABELS }) {
  return new Promise((resolve) => {
    const errors = {};
    const inputs = {};
    const body = [];
    if (text) body.push(h("p", { class: "dialog-text" }, text));
    for (const f of fields) {
      const id = `dlg-${f.name}`;
      let input;
      if (f.type === "select") {
        input = h("select", { id, name: f.name },
          f.options.map((o) => h("option", { value: o.value, selected: o.value === f.value },
            o.label)));
      } else if (f.type === "textarea") {
        input = h("textarea", { id, name: f.name, rows: 3 });
        input.value = f.value || "";
      } else if (f.type === "datetime-local") {
        // Not the native picker: it shows the browser's locale format, not дд.мм.гггг.
        input = ruDateInput(h("input", { id, name: f.name }), true);
        input.value = f.value || "";
      } else {
        input = h("input", { id, name: f.name, type: f.type || "text" });
        input.value = f.value || "";
      }
      inputs[f.name] = input;
      errors[f.name] = h("div", { class: "field-error", id: `${id}-error`, role: "alert" });
      input.setAttribute("aria-describedby", `${id}-error`);
      body.push(h("div", { class: "field" }, h("label", { for: id }, f.label), input,
        f.hint ? h("div", { class: "hint" }, f.hint) : null, errors[f.name]));
    }
    const general = h("div", { class: "alert alert-error", role: "alert", hidden: true });
    const ok = h("button", { type: "submit", class: danger ? "btn btn-danger" : "btn btn-primary" },
      submit);
    const cancel = h("button", { type: "button", class: "btn" }, "Отмена");
    const form = h("form", { method: "dialog", class: "dialog-form" },
      h("h2", {}, title), ...body, general, h("div", { class: "dialog-buttons" }, cancel, ok));
    const dialog = h("dialog", { class: "dialog", "aria-label": title }, form);
    document.body.append(dialog);
    const finish = (value) => { dialog.close(); dialog.remove(); resolve(value); };
    cancel.addEventListener("click", () => finish(null));
    dialog.addEventListener("cancel", (e) => { e.preventDefault(); finish(null); });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      for (const el of Object.values(errors)) el.textContent = "";
      const values = {};
      for (const [name, el] of Object.entries(inputs)) {
        values[name] = el.dataset.ruDate ? isoFromRuDate(el.value) : el.value;
        if (values[name] === null) {
          errors[name].textContent = `Дата и время в формате ${DATETIME_PLACEHOLDER}`;
          return;
        }
      }
      general.hidden = true;
      ok.disabled = true;
      try {
        const result = await run(values);
        finish(result);
      } catch (exc) {
        ok.disabled = false;
        let shown = false;
        for (const [name, message] of Object.entries(exc.fields || {})) {
          if (errors[name]) { errors[name].textContent = message; shown = true; }
        }
        const other = Object.entries(exc.fields || {}).filter(([n]) => !errors[n])
          .map(([n, m]) => `${labels[n] || n}: ${m}`);
        if (!shown || other.length) {
          general.textContent = [exc.message, ...other].join(". ");
          general.hidden = false;
        }
      }
    });
    dialog.showModal();
    const first = Object.values(inputs)[0] || ok;
    first.focus();
  });
}

// ---------------------------------------------------------------- the form
export class RequestForm {
  /**
   * @param {HTMLElement} root where the form is rendered
   * @param {object} opts user, card (/api/v1/card), topics [{code,label}], config
   *   (/api/v1/ui/config), onLoaded(request), actions (bool: show workflow buttons)
   */
  constructor(root, { user, card, topics = [], config = {}, onLoaded, actions = false } = {}) {
    this.root = root;
    ({ groups: this.groups, fields: this.fields, labels: this.labels } = formOf(card));
    this.user = user;
    this.topics = topics;
    this.config = config;
    this.onLoaded = onLoaded || (() => {});
    this.withActions = actions;
    this.request = null;
    this.loadSeq = 0;  // bumped by every load
    this.saving = false;
    this.inputs = {};
    this.errors = {};
    this.hints = {};
    this.readOnly = false;
    this.retired = new Map(); // number → why it left this user's scope
    this.smoNames = Object.fromEntries((config.smo || []).filter((s) => s.name)
  .map((s) => [s.code, s.name]));
  }

  canEdit() {
    return ["operator", "admin", "smo"].includes(this.user.role);
  }

  /** Render (or re-render) for ``request`` (the JSON of GET /api/v1/requests/{n}). */
  load(request) {
    this.loadSeq += 1;  // a background reload begun earlier gives way
    this.request = request;
    this.root.textContent = "";
    this.inputs = {};
    this.errors = {};
    this.hints = {};
    this.conflictBox = h("div", { class: "conflict", id: "conflict", role: "alert", hidden: true });
    this.banner = h("div", { class: "alert", id: "form-banner", role: "status", hidden: true });
    this.closedBanner = h("div", { class: "alert alert-closed", id: "closed-banner",
      role: "status", hidden: true });
    const form = h("form", { id: "request-form", class: "request-form", novalidate: true,
      "aria-label": `Заявка № ${request.number}`, dataset: { number: request.number } });
    form.addEventListener("submit", (e) => { e.preventDefault(); this.save(); });
    form.append(this._summary(request), this.closedBanner, this.conflictBox, this.banner);
    for (const { key: group, title } of this.groups) {
      const fieldset = h("fieldset", { class: `group group-${group}` }, h("legend", {}, title));
      const grid = h("div", { class: "grid" });
      for (const field of this.fields.filter((f) => f.group === group)) {
        grid.append(this._field(field));
      }
      fieldset.append(grid);
      form.append(fieldset);
    }
    this.saveButton = h("button", { type: "submit", class: "btn btn-primary", id: "save" },
      "Сохранить");
    this.resetButton = h("button", { type: "button", class: "btn", id: "reset",
      onclick: () => this.reload() }, "Отменить изменения");
    this.versionText = h("span", { class: "muted small", id: "version" },
      `версия ${request.version}`);
    form.append(h("div", { class: "form-buttons" }, this.saveButton, this.resetButton,
      this.versionText));
    this.root.append(form);
    if (this.withActions) this.root.append(this._actions(request));
    this.form = form;
    const closed = request.closed || request.status === "closed";
    this.setReadOnly(closed || !this.canEdit(), closed);
    this._toggleUrgent();
    if (this.retired.has(request.number)) this._showRetired();
    this.onLoaded(request);
  }

  _summary(r) {
    const items = [
      ["Номер заявки", h("strong", { id: "req-number" }, `№ ${r.number}`)],
      ["Поступила", fmtDateTime(r.created_at)],
      ["Номер звонящего", h("span", { id: "req-caller" }, callerText(r.caller_number))],
      ["Статус", h("span", { id: "req-status" }, statusBadge(r.status))],
      ["Уровень", h("span", { id: "req-level" }, levelText(r, this.smoNames))],
      ["Оператор", r.operator || r.assigned_to || "—"],
    ];
    if (r.deferred_due_at) {
      items.push(["Перезвонить до", r.deferred_done_at
        ? `${fmtDateTime(r.deferred_due_at)} (выполнено ${fmtDateTime(r.deferred_done_at)})`
        : fmtDateTime(r.deferred_due_at)]);
    }
    if (r.redirected_to) {
      const target = (this.config.redirect_targets || []).find((t) => t.code === r.redirected_to);
      items.push(["Переадресовано", `${target ? target.name : r.redirected_to}` +
        (r.redirect_note ? ` — ${r.redirect_note}` : "")]);
    }
    if (r.corrects_number) items.push(["Исправляет заявку", `№ ${r.corrects_number}`]);
    return h("dl", { class: "summary" },
      items.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v))));
  }

  _field(field) {
    const id = `f-${field.name}`;
    const value = this.request[field.name];
    let input;
    if (field.input === "checkbox") {
      input = h("input", { id, name: field.name, type: "checkbox", checked: Boolean(value) });
    } else if (field.input === "textarea") {
      input = h("textarea", { id, name: field.name, rows: field.name === "summary" ? 4 : 3,
        maxlength: field.max_length });
      input.value = value || "";
    } else if (field.input === "select") {
      input = h("select", { id, name: field.name }, this._options(field, value));
    } else {
      input = h("input", { id, name: field.name, type: field.input,
        maxlength: field.max_length, inputmode: field.inputmode, autocomplete: "off" });
      input.value = value || "";
    }
    const error = h("div", { class: "field-error", id: `${id}-error`, role: "alert",
      "aria-live": "polite" });
    const hint = h("div", { class: "hint", id: `${id}-hint` }, field.hint || "");
    input.setAttribute("aria-describedby", `${id}-hint ${id}-error`);
    this.inputs[field.name] = input;
    this.errors[field.name] = error;
    this.hints[field.name] = hint;
    input.addEventListener("input", () => this._onInput(field));
    input.addEventListener("change", () => this._onInput(field));
    input.addEventListener("blur", () => this._check(field));
    const label = h("label", { for: id }, field.label);
    const cls = `field field-${field.name}` + (field.wide ? " wide" : "") +
      (field.input === "checkbox" ? " field-check" : "");
    if (field.input === "checkbox") {
      return h("div", { class: cls, id: `wrap-${field.name}` }, h("div", { class: "check" },
        input, label), field.hint ? hint : null, error);
    }
    return h("div", { class: cls, id: `wrap-${field.name}` }, label, input, hint, error);
  }

  _options(field, value) {
    const empty = field.empty_label === null ? [] : [h("option", { value: "" }, field.empty_label)];
    if (field.type === "classifier") {
      const list = [...this.topics];
      if (value && !list.some((t) => t.code === value)) list.push({ code: value, label: value });
      return [...empty,
        ...list.map((t) => h("option", { value: t.code, selected: t.code === value }, t.label))];
    }
    if (field.type === "optional_bool") {
      const current = value === true || value === "true" ? "true"
        : value === false || value === "false" ? "false" : "";
      return [["", field.empty_label], ["true", "да"], ["false", "нет"]].map(([v, label]) =>
        h("option", { value: v, selected: v === current }, label));
    }
    const choices = [...field.choices];
    // A value the editor may not pick (a status an action set) stays on display.
    if (value && !choices.some((c) => c.value === value)) {
      choices.unshift({ value, label: (OTHER_VALUES[field.name] || {})[value] || value });
    }
    return [...empty, ...choices.map((c) => h("option", { value: c.value,
      selected: c.value === value }, c.label))];
  }

  _onInput(field) {
    this._setError(field.name, "");
    if (field.counter) {
      const n = digitsOf(this.inputs[field.name].value).length;
      this.hints[field.name].textContent = n && n !== field.counter
        ? `${field.hint}: введено ${n}` : field.hint;
    }
    if (field.name === "urgent") this._toggleUrgent();
    this._markDirty();
  }

  _toggleUrgent() {
    const wrap = this.root.querySelector("#wrap-urgent_action");
    if (wrap) wrap.hidden = !(this.inputs.urgent.checked || this.request.urgent_action);
  }

  _check(field) {
    if (!field.check || this.readOnly) return true;
    const result = field.check(this.inputs[field.name].value);
    if (result.error) {
      this._setError(field.name, result.error);
      return false;
    }
    this._setError(field.name, "", result.warning || "");
    return true;
  }

  _setError(name, message, warning = "") {
    const el = this.errors[name];
    const input = this.inputs[name];
    if (!el) return;
    el.textContent = message || warning;
    el.classList.toggle("is-warning", Boolean(!message && warning));
    if (input) input.setAttribute("aria-invalid", message ? "true" : "false");
    el.parentElement.classList.toggle("has-error", Boolean(message));
  }

  _markDirty() {
    const dirty = this.isDirty();
    if (this.form) this.form.classList.toggle("dirty", dirty);
    if (this.saveButton) this.saveButton.textContent = dirty ? "Сохранить изменения" : "Сохранить";
  }

  values() {
    const out = {};
    for (const field of this.fields) {
      const input = this.inputs[field.name];
      if (!input) continue;
      out[field.name] = normalize(field, field.input === "checkbox" ? input.checked : input.value);
    }
    return out;
  }

  /** Fields whose value differs from ``base`` (the loaded request by default). */
  changes(base = this.request) {
    const diff = {};
    const values = this.values();
    for (const field of this.fields) {
      const before = normalize(field, base[field.name]);
      if (values[field.name] !== before) diff[field.name] = values[field.name];
    }
    return diff;
  }

  isDirty() {
    return Boolean(this.request) && !this.readOnly && Object.keys(this.changes()).length > 0;
  }

  setReadOnly(readOnly, closed = false) {
    this.readOnly = readOnly;
    for (const input of Object.values(this.inputs)) input.disabled = readOnly;
    if (this.saveButton) this.saveButton.hidden = readOnly;
    if (this.resetButton) this.resetButton.hidden = readOnly;
    if (this.form) this.form.classList.toggle("readonly", readOnly);
    if (this.actionsBox) this.actionsBox.hidden = readOnly;
    if (closed) {
      const r = this.request;
      this.closedBanner.textContent = "";
      this.closedBanner.append(h("strong", {}, "Заявка закрыта"),
        r.closed_at ? ` ${fmtDateTime(r.closed_at)}` : "",
        r.closed_by ? `, закрыл(а) ${r.closed_by}` : "",
        ". Редактирование недоступно.");
      this.closedBanner.hidden = false;
    } else if (readOnly) {
      this.closedBanner.textContent = "Только просмотр: у вашей роли нет права изменять заявку.";
      this.closedBanner.hidden = false;
    } else {
      this.closedBanner.hidden = true;
    }
  }

  /** The request left this user's scope (e.g. handed to an SMO): keep it on screen, frozen. */
  retire(number, message) {
    this.retired.set(number, message);
    if (this.request && this.request.number === number) this._showRetired();
  }

  _showRetired() {
    const message = this.retired.get(this.request.number);
    this.setReadOnly(true);
    this.closedBanner.textContent = message;
    this.closedBanner.hidden = false;
  }

  showBanner(message, kind = "info") {
    this.banner.className = `alert alert-${kind}`;
    this.banner.textContent = message;
    this.banner.hidden = !message;
  }

  /**
   * Fetch the request again and show it. A background refresh (the call or another user moved
   * the request on) gives way to whatever happened while it was fetching — the operator's
   * edits, a save, another request opened — and keeps the banner on screen.
   */
  async reload({ background = false } = {}) {
    if (!this.request || this.retired.has(this.request.number)) return;
    const seq = this.loadSeq;
    const fresh = await api(`/api/v1/requests/${this.request.number}`);
    if (!background) {
      this.load(fresh);
      return;
    }
    if (seq !== this.loadSeq || this.saving || this.isDirty()) return;
    const banner = this.banner.hidden ? null
      : { text: this.banner.textContent, className: this.banner.className };
    this.load(fresh);
    if (banner) {
      this.banner.className = banner.className;
      this.banner.textContent = banner.text;
      this.banner.hidden = false;
    }
  }

  /** Another user (or the PBX) changed the request: reload unless the operator is typing. */
  async externalUpdate(version) {
    if (!this.request || (version && version <= this.request.version)) return;
    if (this.isDirty()) {
      this.showBanner("Заявку изменил другой пользователь. Сохраните свои изменения — " +
        "при расхождении будут показаны обе версии.", "warning");
      return;
    }
    await this.reload({ background: true });
  }

  async save() {
    if (this.readOnly || !this.request) return;
    for (const name of Object.keys(this.errors)) this._setError(name, "");
    this.showBanner("");
    let firstBad = null;
    for (const field of this.fields) {
      if (!this._check(field) && !firstBad) firstBad = this.inputs[field.name];
    }
    if (firstBad) {
      this.showBanner("Исправьте ошибки в отмеченных полях — заявка не сохранена.", "error");
      firstBad.focus();
      return;
    }
    const diff = this.changes();
    if (!Object.keys(diff).length) {
      this.showBanner("Изменений нет.", "info");
      return;
    }
    this.saveButton.disabled = true;
    this.saving = true;
    try {
      const saved = await api(`/api/v1/requests/${this.request.number}`, {
        method: "PATCH", body: { ...diff, version: this.request.version },
      }).finally(() => { this.saving = false; });
      this.load(saved);
      this.showBanner(`Заявка № ${saved.number} сохранена.`, "success");
      for (const [name, message] of Object.entries(saved.warnings || {})) {
        this._setError(name, "", message);
      }
    } catch (exc) {
      this.saveButton.disabled = false;
      this._handleError(exc, diff);
    }
  }

  _handleError(exc, diff = {}) {
    if (exc.status === 422) {
      const other = [];
      for (const [name, message] of Object.entries(exc.fields || {})) {
        if (this.errors[name]) this._setError(name, message);
        else other.push(`${this.labels[name] || name}: ${message}`);
      }
      this.showBanner([exc.message || "Проверьте заполнение полей", ...other].join(". ") +
        " — заявка не сохранена.", "error");
      const bad = Object.keys(exc.fields || {}).find((n) => this.inputs[n]);
      if (bad) this.inputs[bad].focus();
    } else if (exc.code === "version_conflict") {
      this._showConflict(exc.current, diff);
    } else if (exc.code === "closed") {
      this.showBanner(exc.message, "error");
      this.reload().catch(() => {});
    } else {
      this.showBanner(exc.message || "Не удалось сохранить заявку", "error");
    }
  }

  _showConflict(current, mine) {
    const box = this.conflictBox;
    box.textContent = "";
    box.append(h("h3", {}, "Заявку уже изменил другой пользователь"),
      h("p", {}, "Ваши изменения НЕ сохранены. Сравните их с актуальной версией в журнале" +
        (current ? ` (версия ${current.version})` : "") + " и выберите, что сделать."));
    if (current) {
      const rows = [];
      const names = new Set([...Object.keys(mine),
        ...this.fields.filter((f) => normalize(f, current[f.name]) !==
          normalize(f, this.request[f.name])).map((f) => f.name)]);
      for (const name of names) {
        const field = this.fields.find((f) => f.name === name);
        if (!field) continue;
        const show = (v) => (v === true ? "да" : v === false ? "нет" : v ?? "—");
        rows.push(h("tr", { dataset: { field: name } }, h("th", { scope: "row" }, field.label),
          h("td", { class: "mine" }, show(this.values()[name])),
          h("td", { class: "theirs" }, show(normalize(field, current[name])))));
        const hint = this.hints[name];
        if (hint) hint.textContent = `Сейчас в журнале: ${show(normalize(field, current[name]))}`;
      }
      box.append(h("table", { class: "table conflict-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Поле"), h("th", {}, "Ваше значение"),
          h("th", {}, "Сейчас в журнале"))), h("tbody", {}, rows)));
    }
    const discard = h("button", { type: "button", class: "btn", id: "conflict-discard",
      onclick: () => { box.hidden = true; if (current) this.load(current); else this.reload(); } },
    "Показать актуальную версию (мои изменения отбросить)");
    const keep = h("button", { type: "button", class: "btn btn-primary", id: "conflict-keep",
      onclick: async () => {
        if (!current) return;
        const values = this.values();
        this.load(current);
        for (const [name, value] of Object.entries(mine)) {
          const input = this.inputs[name];
          if (!input) continue;
          if (input.type === "checkbox") input.checked = Boolean(value);
          else input.value = value ?? "";
        }
        void values;
        this._markDirty();
        this.showBanner("Ваши изменения перенесены на актуальную версию. Проверьте и " +
          "нажмите «Сохранить».", "warning");
      } }, "Перенести мои изменения на актуальную версию");
    box.append(h("div", { class: "conflict-buttons" }, keep, discard));
    box.hidden = false;
    box.scrollIntoView({ block: "nearest" });
  }

  // ------------------------------------------------------------ workflow actions
  _actions(r) {
    const role = this.user.role;
    const buttons = [];
    const add = (id, label, handler, cls = "btn") =>
      buttons.push(h("button", { type: "button", class: cls, id, onclick: () =>
        this._guarded(handler) }, label));
    add("act-l2", "На 2 уровень", () => this._route("l2"));
    if (role !== "smo") add("act-smo", "В СМО…", () => this._routeSmo());
    add("act-redirect", "Переадресовать…", () => this._redirect());
    add("act-written", "Письменное обращение", () => this._route("written_appeal"));
    add("act-defer", "Отсроченный ответ…", () => this._defer());
    add("act-callback", "Перезвонить", () => this._callback());
    if (r.deferred_due_at && !r.deferred_done_at) {
      add("act-done", "Ответ дан по отсроченному…", () => this._done());
    }
    add("act-urgent", "Срочное вмешательство…", () => this._urgent(), "btn btn-warning");
    this.actionsBox = h("section", { class: "actions", "aria-label": "Действия с заявкой" },
      h("h3", {}, "Действия"), h("div", { class: "action-buttons" }, buttons));
    return this.actionsBox;
  }

  async _guarded(handler) {
    if (this.isDirty()) {
      this.showBanner("Сначала сохраните изменения в форме — действие не выполнено.", "warning");
      return;
    }
    try {
      const result = await handler();
      if (result && result.number) {
        this.load(result);
        this.showBanner("Действие выполнено.", "success");
      }
    } catch (exc) {
      this._handleError(exc);
    }
  }

  /** An action's dialog: its errors name card fields as the card labels them. */
  _dialog(options) {
    return actionDialog({ labels: this.labels, ...options });
  }

  _post(path, body) {
    return api(`/api/v1/requests/${this.request.number}/${path}`, {
      method: "POST", body: { ...body, version: this.request.version },
    });
  }

  _route(to) {
    const texts = {
      l2: "Передать обращение оператору 2 уровня? Скажите гражданину: «Оставайтесь, " +
        "пожалуйста, на линии. Ваш звонок переводится.»",
      written_appeal: "Отметить, что гражданину рекомендовано оформить письменное обращение?",
    };
    return this._dialog({ title: to === "l2" ? "Передача на 2 уровень" : "Письменное обращение",
      text: texts[to], run: () => this._post("route", { to }) });
  }

  _routeSmo() {
    const options = (this.config.smo || []).map((s) => ({ value: s.code,
      label: smoLabel(s.code, this.smoNames) }));
    return this._dialog({ title: "Передача в СМО",
      text: "Обращение будет передано страховому представителю 2 уровня выбранной СМО.",
      fields: [{ name: "smo", label: "Страховая медицинская организация", type: "select",
        options, value: this.request.smo || options[0]?.value }],
      run: (v) => this._post("route", { to: "smo", smo: v.smo }) });
  }

  _redirect() {
    const options = (this.config.redirect_targets || []).map((t) => ({ value: t.code,
      label: t.name }));
    return this._dialog({ title: "Переадресация",
      text: "Вопрос вне компетенции фонда и СМО: разъясните, куда и в каком порядке обратиться.",
      fields: [
        { name: "redirected_to", label: "Куда", type: "select", options, value: "rzn" },
        { name: "note", label: "Пояснение гражданину", type: "textarea" }],
      run: (v) => this._post("route", { to: "redirect", redirected_to: v.redirected_to,
        note: v.note || null }) });
  }

  _defer() {
    return this._dialog({ title: "Отсроченный ответ",
      text: "«Для ответа на Ваш вопрос необходимо более длительное время, я Вам перезвоню " +
        "в течение дня.» Уточните контактный телефон.",
      fields: [
        { name: "contact_phone", label: "Контактный телефон", type: "tel",
          value: this.request.contact_phone || this.request.caller_number || "" },
        { name: "due_at", label: "Перезвонить до (необязательно)", type: "datetime-local",
          hint: "Если не указано — в течение рабочего дня" }],
      run: (v) => this._post("defer", { contact_phone: v.contact_phone,
        due_at: v.due_at || null }) });
  }

  _done() {
    return this._dialog({ title: "Ответ по отсроченному обращению",
      fields: [{ name: "result", label: "Результат (что сообщено гражданину)",
        type: "textarea" }],
      run: (v) => this._post("callback/done", { result: v.result || null }) });
  }

  _callback() {
    const number = this.request.contact_phone || this.request.caller_number || "";
    return this._dialog({ title: "Звонок гражданину",
      text: "Сначала зазвонит ваш телефон, затем будет набран номер гражданина. Разговор " +
        "записывается и привязывается к заявке.",
      fields: [{ name: "number", label: "Номер", type: "tel", value: number }],
      submit: "Позвонить",
      run: (v) => this._post("callback", { number: v.number }) });
  }

  _urgent() {
    return this._dialog({ title: "Срочное вмешательство",
      text: "Связь с ответственным лицом медицинской организации (заведующий поликлиникой, " +
        "заместитель главного врача по медицинской части).",
      fields: [
        { name: "medical_org", label: "Медицинская организация",
          value: this.request.medical_org || "" },
        { name: "contact_person", label: "С кем связались" },
        { name: "action", label: "Принятые меры", type: "textarea" },
        { name: "feedback", label: "Обратная информация", type: "textarea" }],
      run: (v) => this._post("urgent", v) });
  }
}

export async function loadTopics() {
  try {
    const { items } = await api("/api/v1/classifier/topics");
    return items.filter((t) => t.active !== false);
  } catch {
    return [];
  }
}

/** The request card (GET /api/v1/card): without it there is no form to show. */
export function loadCard() {
  return api("/api/v1/card");
}

export async function loadConfig() {
  try {
    return await api("/api/v1/ui/config");
  } catch {
    return { smo: [], redirect_targets: [] };
  }
}

export { toast };
