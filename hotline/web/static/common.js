// Shared helpers of the hotline pages: API calls (cookie + CSRF), labels, formatting, DOM.

export const STATUS_LABELS = {
  new: "новая",
  in_progress: "в работе",
  transferred: "передана",
  deferred: "отсроченный ответ",
  answered: "дан ответ",
  closed: "закрыта",
};

export const LEVEL_LABELS = { 1: "1 уровень", 2: "2 уровень", smo: "СМО" };

export const ROLE_LABELS = {
  admin: "администратор",
  operator: "оператор",
  smo: "представитель СМО",
  auditor: "аудитор",
  anticorruption: "антикоррупционный отдел",
};

export const TIMELINE_LABELS = {
  started: "Начало вызова",
  queued: "Постановка в очередь",
  ringing: "Звонит телефон",
  ring_no_answer: "Нет ответа",
  answered: "Ответ оператора",
  answered_elsewhere: "Ответ на внешнем номере",
  held: "Удержание",
  unheld: "Снято с удержания",
  transferred: "Перевод",
  recording: "Запись разговора",
  ended: "Завершение вызова",
};

export const TARGET_LABELS = { l2: "2 уровень", smo: "СМО", other: "другой номер" };
export const KIND_LABELS = { blind: "слепой", attended: "с консультацией" };
export const OUTCOME_LABELS = {
  answered: "отвечен",
  abandoned: "не дождался ответа",
  missed: "пропущен",
  failed: "не состоялся",
};

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `Ошибка сервера (${status})`);
    this.status = status;
    this.code = err.code || "http_" + status;
    this.fields = err.fields || {};
    this.current = err.current || null;
    this.body = body;
  }
}

export function cookie(name) {
  const prefix = name + "=";
  for (const part of document.cookie.split(";")) {
    const item = part.trim();
    if (item.startsWith(prefix)) return decodeURIComponent(item.slice(prefix.length));
  }
  return "";
}

/** JSON API call; throws ApiError with the server's Russian message. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = cookie("hotline_csrf");
  let response;
  try {
    response = await fetch(path, {
      method, headers, signal, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    throw new ApiError(0, { error: { code: "network", message: "Нет связи с сервером" } });
  }
  let data = null;
  const text = await response.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!response.ok) {
    if (response.status === 401 && !path.endsWith("/auth/login")) {
      redirectToLogin();
    }
    throw new ApiError(response.status, data);
  }
  return data;
}

export function redirectToLogin() {
  const here = location.pathname + location.search + location.hash;
  if (location.pathname !== "/login") {
    location.assign("/login?next=" + encodeURIComponent(here));
  }
}

export function homeFor(user) {
  if (user.role === "operator") return "/operator";
  if (user.role === "smo") return "/requests";
  return "/admin";
}

/** The signed-in user, or a redirect to the sign-in page. */
export async function requireUser(roles) {
  try {
    const { user } = await api("/api/v1/auth/me");
    if (roles && !roles.includes(user.role)) {
      location.replace(homeFor(user));
      return new Promise(() => {});
    }
    return user;
  } catch (exc) {
    redirectToLogin();
    return new Promise(() => {});
  }
}

export async function logout() {
  try { await api("/api/v1/auth/logout", { method: "POST" }); } catch { /* already out */ }
  location.assign("/login");
}

const dateTime = new Intl.DateTimeFormat("ru-RU", {
  timeZone: "Europe/Moscow", day: "2-digit", month: "2-digit", year: "numeric",
  hour: "2-digit", minute: "2-digit", second: "2-digit",
});
const timeOnly = new Intl.DateTimeFormat("ru-RU", {
  timeZone: "Europe/Moscow", hour: "2-digit", minute: "2-digit", second: "2-digit",
});

export function fmtDateTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : dateTime.format(d);
}

export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : timeOnly.format(d);
}

export function fmtDuration(seconds) {
  if (seconds == null) return "—";
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** Tiny DOM builder: h("div", {class: "x", onclick}, child, "text"). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// Bidi controls (LRM/RLM, embeddings, overrides, isolates, ALM): from a caller ID they would
// reverse or reorder the text around them on the page.
const BIDI_CONTROLS = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;
const CALLER_MAX_CHARS = 40;

/** A caller's number (or name) as the PBX sent it, made safe to show: bidi controls removed,
 * isolated from the surrounding text (<bdi dir="ltr">), cut to 40 characters (the full text,
 * up to 200, in the tooltip), and clipped by CSS to its box. */
export function callerText(value, fallback = "—") {
  const text = String(value || "").replace(BIDI_CONTROLS, "");
  if (!text.trim()) return fallback;
  const shown = text.length > CALLER_MAX_CHARS ? text.slice(0, CALLER_MAX_CHARS) + "…" : text;
  return h("bdi", { class: "caller", dir: "ltr",
    title: text.length > CALLER_MAX_CHARS ? text.slice(0, 200) : null }, shown);
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, STATUS_LABELS[status] || status);
}

/** An SMO's display name (the configured one already says "СМО …"), else "СМО CODE". */
export function smoLabel(code, smoNames = {}) {
  if (!code) return "СМО";
  return smoNames[code] || `СМО ${code}`;
}

export function levelText(item, smoNames = {}) {
  if (item.level === "smo") return item.smo ? smoLabel(item.smo, smoNames) : "СМО";
  return LEVEL_LABELS[item.level] || item.level || "—";
}

export const RECORDING_STATUS = {
  pending: "файл ещё записывается",
  linked: "привязана",
  stored: "сохранена",
  verified: "проверена",
  missing: "файл не найден",
  purged: "удалена по сроку хранения",
  tampered: "файл изменён — контрольная сумма не совпадает",
};

/** Shows the signed-in user in the header and wires the sign-out button. */
export function fillHeader(user) {
  const who = document.getElementById("who");
  if (who) {
    who.textContent = "";
    who.append(
      h("span", { class: "who-login" }, user.login),
      h("span", { class: "who-role" },
        ROLE_LABELS[user.role] || user.role,
        user.extension ? `, доб. ${user.extension}` : "",
        user.smo ? `, ${user.smo}` : ""),
    );
  }
  const out = document.getElementById("logout");
  if (out) out.addEventListener("click", logout);
}

export function toast(message, kind = "info") {
  let box = document.getElementById("toasts");
  if (!box) {
    box = h("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(box);
  }
  const item = h("div", { class: `toast toast-${kind}` }, message);
  box.append(item);
  setTimeout(() => item.remove(), 6000);
}

// ---------------------------------------------------------------- dates typed as дд.мм.гггг
// Native date inputs show the browser's locale format (mm/dd/yyyy in an English browser);
// the pages use text inputs in the Russian format instead and send ISO to the API.
export const DATE_PLACEHOLDER = "дд.мм.гггг";
export const DATETIME_PLACEHOLDER = "дд.мм.гггг чч:мм";

/** "дд.мм.гггг" (and an optional " чч:мм") → "гггг-мм-дд" ("…Tчч:мм"); "" → ""; null when
 * the text is not a real date. */
export function isoFromRuDate(text) {
  const value = String(text || "").trim();
  if (!value) return "";
  const m = value.match(/^(\d{1,2})\.(\d{1,2})\.(\d{4})(?:\s+(\d{1,2}):(\d{2}))?$/);
  if (!m) return null;
  const [day, month, year] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const date = new Date(Date.UTC(year, month - 1, day));
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1
      || date.getUTCDate() !== day) return null;
  const pad = (n) => String(n).padStart(2, "0");
  const iso = `${year}-${pad(month)}-${pad(day)}`;
  if (m[4] === undefined) return iso;
  if (Number(m[4]) > 23 || Number(m[5]) > 59) return null;
  return `${iso}T${pad(Number(m[4]))}:${m[5]}`;
}

/** Make ``input`` a дд.мм.гггг field: placeholder, digits keyboard, dots put in as one types. */
export function ruDateInput(input, withTime = false) {
  input.type = "text";
  input.inputMode = "numeric";
  input.autocomplete = "off";
  input.placeholder = withTime ? DATETIME_PLACEHOLDER : DATE_PLACEHOLDER;
  input.maxLength = withTime ? 16 : 10;
  input.dataset.ruDate = withTime ? "datetime" : "date";
  input.addEventListener("input", (event) => {
    if (event.inputType && event.inputType.startsWith("delete")) return;
    const digits = input.value.replace(/\D/g, "").slice(0, withTime ? 12 : 8);
    let out = digits.slice(0, 2);
    if (digits.length > 2) out += "." + digits.slice(2, 4);
    if (digits.length > 4) out += "." + digits.slice(4, 8);
    if (digits.length > 8) out += " " + digits.slice(8, 10);
    if (digits.length > 10) out += ":" + digits.slice(10, 12);
    input.value = out;
  });
  return input;
}
