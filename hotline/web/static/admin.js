// Administrator console (also the SMO representative's and auditor's journal): search with
// filters and pagination, request detail with call timeline and recordings, closing, audit log.
import {
  api, callerText, fillHeader, fmtDateTime, fmtDuration, fmtTime, h, isoFromRuDate,
  KIND_LABELS, levelText, OUTCOME_LABELS, RECORDING_STATUS, requireUser, ruDateInput, smoLabel,
  statusBadge, TARGET_LABELS, TIMELINE_LABELS, toast,
} from "/static/common.js";
import { EventStream, showConnection } from "/static/events.js";
import {
  actionDialog, loadCard, loadConfig, loadTopics, RequestForm,
} from "/static/form.js";
import { MissedPanel } from "/static/missed.js";
import { REPORT_ROLES, ReportsView } from "/static/reports.js";

const PAGE = 20;
const AUDIT_LABELS = {
  login: "Вход в систему", login_failed: "Неудачный вход", logout: "Выход",
  login_locked_out: "Вход временно заблокирован",
  list_requests: "Поиск заявок", read_request: "Просмотр заявки",
  update_request: "Изменение заявки", close_request: "Закрытие заявки",
  correct_request: "Исправление закрытой заявки", route_request: "Маршрутизация",
  defer_request: "Отсроченный ответ", callback_done: "Ответ по отсроченному",
  callback_call: "Звонок гражданину", urgent_contact: "Срочное вмешательство",
  corruption_reported: "Сообщение о коррупции", list_recordings: "Список записей",
  play_recording: "Прослушивание записи", read_audit: "Просмотр журнала аудита",
  user_unlocked: "Разблокировка пользователя", report: "Отчёт",
  list_callbacks: "Список отсроченных", classifier_topic: "Изменение классификатора",
  list_missed: "Список пропущенных", callback_attempt: "Попытка перезвона",
};
const HISTORY_LABELS = {
  edit: "Изменение", close: "Закрытие", route_l2: "Передана на 2 уровень",
  route_smo: "Передана в СМО", route_redirect: "Переадресация",
  route_written_appeal: "Рекомендовано письменное обращение", route_corruption: "Коррупция",
  defer: "Отсроченный ответ", callback_done: "Ответ по отсроченному",
  callback_call: "Звонок гражданину", urgent_contact: "Срочное вмешательство",
  corruption_reported: "Сообщение о коррупции", correction_of: "Исправление заявки",
  corrected_by: "Исправлена новой заявкой", callback_attempt: "Попытка перезвона",
};

const user = await requireUser(["admin", "auditor", "smo", "operator", "anticorruption"]);
fillHeader(user);
const isAdmin = user.role === "admin";
const canAudit = ["admin", "auditor"].includes(user.role);
const canReport = REPORT_ROLES.includes(user.role);
document.getElementById("console-title").textContent = {
  admin: "Консоль администратора", auditor: "Консоль аудитора",
  smo: `Обращения, переданные в СМО ${user.smo || ""}`,
  anticorruption: "Сообщения о коррупционных проявлениях",
}[user.role] || "Журнал обращений";
if (user.role === "anticorruption") {
  document.getElementById("list-title").textContent = "Сообщения о коррупционных проявлениях";
}
document.getElementById("tab-audit").hidden = !canAudit;
document.getElementById("tab-reports").hidden = !canReport;
const [topics, config, requestCard] = await Promise.all([loadTopics(), loadConfig(),
  loadCard()]);
const smoNames = Object.fromEntries((config.smo || []).filter((s) => s.name)
  .map((s) => [s.code, s.name]));
const topicNames = Object.fromEntries(topics.map((t) => [t.code, t.label]));
const reports = canReport ? new ReportsView({ user, config, topicNames, smoNames }) : null;

// ---------------------------------------------------------------- list
const search = document.getElementById("search");
const smoSelect = document.getElementById("q-smo");
for (const s of config.smo || []) {
  smoSelect.append(h("option", { value: s.code }, smoLabel(s.code, smoNames)));
}
if (user.role === "smo") document.getElementById("q-smo-wrap").hidden = true;
let offset = 0;

for (const input of document.querySelectorAll("input[data-ru-date]")) ruDateInput(input);

/** The message for the first date field of ``form`` that is not дд.мм.гггг, or "". */
function badDate(form) {
  for (const input of form.querySelectorAll("input[data-ru-date]")) {
    if (isoFromRuDate(input.value) === null) {
      const label = form.querySelector(`label[for="${input.id}"]`);
      return `${label ? label.textContent : "Дата"}: дата в формате дд.мм.гггг`;
    }
  }
  return "";
}

function searchParams() {
  const data = new FormData(search);
  const params = new URLSearchParams();
  for (const [key, value] of data.entries()) {
    let text = String(value).trim();
    if (!text) continue;
    if (search.elements[key]?.dataset?.ruDate) text = isoFromRuDate(text);
    if (key === "to") {
      // "по" a date means up to the end of that day.
      // (Counted in UTC: a local midnight's toISOString() east of Greenwich is the day before.)
      const d = new Date(text + "T00:00:00Z");
      d.setUTCDate(d.getUTCDate() + 1);
      params.set("to", d.toISOString().slice(0, 10));
    } else {
      params.set(key, text);
    }
  }
  return params;
}

async function loadList() {
  const error = document.getElementById("search-error");
  error.textContent = "";
  const number = search.number.value.trim();
  if (number && !/^\d+$/.test(number)) {
    error.textContent = "Номер заявки — только цифры";
    return;
  }
  error.textContent = badDate(search);
  if (error.textContent) return;
  const params = searchParams();
  params.set("limit", PAGE);
  params.set("offset", offset);
  const tbody = document.querySelector("#results tbody");
  try {
    const { items, total } = await api(`/api/v1/requests?${params}`);
    tbody.textContent = "";
    if (!items.length) {
      tbody.append(h("tr", {}, h("td", { colspan: 8, class: "empty" }, "Заявки не найдены")));
    }
    for (const item of items) {
      const open = () => { location.hash = `#/requests/${item.number}`; };
      tbody.append(h("tr", { class: "row-link", tabindex: 0, dataset: { number: item.number },
        onclick: open, onkeydown: (e) => { if (e.key === "Enter") open(); } },
      h("td", {}, h("a", { href: `#/requests/${item.number}` }, `№ ${item.number}`)),
      h("td", {}, fmtDateTime(item.created_at)),
      h("td", {}, callerText(item.caller_number)),
      h("td", {}, item.full_name || "—"),
      h("td", {}, topicNames[item.topic] || item.topic || "—"),
      h("td", {}, levelText(item, smoNames)),
      h("td", {}, statusBadge(item.status)),
      h("td", {}, item.operator || item.assigned_to || "—")));
    }
    const last = Math.min(offset + items.length, total);
    document.getElementById("page-info").textContent = total
      ? `Показаны ${offset + 1}–${last} из ${total}` : "Ничего не найдено";
    document.getElementById("prev").disabled = offset === 0;
    document.getElementById("next").disabled = offset + PAGE >= total;
  } catch (exc) {
    error.textContent = exc.message;
  }
}

search.addEventListener("submit", (e) => { e.preventDefault(); offset = 0; loadList(); });
search.addEventListener("reset", () => { offset = 0; setTimeout(loadList, 0); });
document.getElementById("prev").addEventListener("click", () => {
  offset = Math.max(0, offset - PAGE); loadList();
});
document.getElementById("next").addEventListener("click", () => { offset += PAGE; loadList(); });

// ---------------------------------------------------------------- detail
const formRoot = document.getElementById("detail-form");
const form = new RequestForm(formRoot, { user, card: requestCard, topics, config,
  actions: !["auditor", "anticorruption"].includes(user.role),
  onLoaded: renderExtras });
const closeButton = document.getElementById("close-request");
let shown = null;

async function openDetail(number) {
  const error = document.getElementById("detail-error");
  error.hidden = true;
  document.getElementById("detail-title").textContent = `Заявка № ${number}`;
  try {
    const request = await api(`/api/v1/requests/${number}`);
    shown = number;
    form.load(request);
  } catch (exc) {
    formRoot.textContent = "";
    for (const id of ["recordings", "timeline", "history"]) {
      document.getElementById(id).textContent = "";
    }
    closeButton.hidden = true;
    error.textContent = exc.message;
    error.hidden = false;
  }
}

function renderExtras(request) {
  closeButton.hidden = !isAdmin || request.closed;
  renderRecordings(request);
  renderTimeline(request);
  renderHistory(request);
}

function renderRecordings(request) {
  const box = document.getElementById("recordings");
  box.textContent = "";
  const recs = request.recordings || [];
  if (!recs.length) {
    box.append(h("p", { class: "muted" }, request.recording_missing
      ? "Запись разговора не найдена на АТС." : "Записей нет."));
    return;
  }
  for (const rec of recs) {
    const playable = rec.url && !["missing", "purged"].includes(rec.status);
    box.append(h("div", { class: "recording", dataset: { id: rec.id } },
      h("div", { class: "recording-head" },
        h("strong", {}, fmtDateTime(rec.started_at)),
        h("span", { class: "muted small" }, ` · ${fmtDuration(rec.duration_s)}`,
          rec.status ? ` · ${RECORDING_STATUS[rec.status] || rec.status}` : "")),
      playable ? h("audio", { controls: true, preload: "none", src: rec.url,
        "aria-label": `Запись от ${fmtDateTime(rec.started_at)}` }) : null,
      h("div", { class: "muted small mono" }, rec.file_name || "")));
  }
}

function describeEvent(ev) {
  const bits = [];
  if (ev.extension) bits.push(`доб. ${ev.extension}`);
  if (ev.queue) bits.push(`очередь ${ev.queue}`);
  if (ev.type === "answered_elsewhere" && ev.number) bits.push(`номер ${ev.number}`);
  if (ev.type === "transferred") {
    if (ev.kind) bits.push(KIND_LABELS[ev.kind] || ev.kind);
    if (ev.from_extension || ev.from) bits.push(`от ${ev.from_extension || ev.from}`);
    if (ev.to) bits.push(`на ${ev.to}`);
    if (ev.target) bits.push(TARGET_LABELS[ev.target] || ev.target);
    if (ev.smo) bits.push(smoLabel(ev.smo, smoNames));
  }
  if (ev.outcome) bits.push(OUTCOME_LABELS[ev.outcome] || ev.outcome);
  if (ev.reason || ev.end_reason) bits.push(ev.reason || ev.end_reason);
  if (ev.file || ev.file_name) bits.push(String(ev.file || ev.file_name).split("/").pop());
  if (ev.source === "cel") bits.push("восстановлен по CEL");
  return bits.join(", ");
}

function renderTimeline(request) {
  const box = document.getElementById("timeline");
  box.textContent = "";
  const calls = request.calls || [];
  if (!calls.length) {
    box.append(h("p", { class: "muted" }, "Вызовов нет."));
    return;
  }
  for (const c of calls) {
    const head = h("div", { class: "call-summary" },
      h("strong", {}, c.direction === "outbound" ? "Исходящий вызов" : "Входящий вызов"),
      " ", callerText(c.caller_number, ""), ` · ${fmtDateTime(c.started_at)}`,
      c.outcome ? h("span", { class: "badge" }, OUTCOME_LABELS[c.outcome] || c.outcome) : null,
      c.answered_by_external ? h("span", { class: "muted answered-elsewhere" },
        " ответил внешний номер ", callerText(c.answered_by_external, "")) : null,
      c.source === "cel" ? h("span", { class: "badge recovered", title:
        "Вызов прошёл, пока сервис не получал события АТС; восстановлен по записям CEL" },
      "восстановлен по CEL") : null);
    const items = (c.timeline || []).map((ev) => h("li", { class: `tl tl-${ev.type}`,
      dataset: { type: ev.type } },
    h("time", { datetime: ev.at }, fmtTime(ev.at)),
    h("span", { class: "tl-label" }, TIMELINE_LABELS[ev.type] || ev.type),
    h("span", { class: "tl-detail" }, describeEvent(ev))));
    const transfers = (c.transfers || []).map((t) => h("tr", { class: "transfer" },
      h("td", {}, fmtTime(t.at)), h("td", {}, KIND_LABELS[t.kind] || t.kind),
      h("td", {}, t.from || "—"), h("td", {}, t.to || "—"),
      h("td", {}, t.target === "smo" ? smoLabel(t.smo, smoNames)
        : TARGET_LABELS[t.target] || t.target || "—")));
    box.append(h("div", { class: "call-block" }, head,
      h("ol", { class: "timeline" }, items),
      transfers.length ? h("div", { class: "table-wrap" }, h("table", {
        class: "table compact transfers", id: `transfers-${c.id}` },
      h("caption", {}, "Переводы"),
      h("thead", {}, h("tr", {}, h("th", {}, "Время"), h("th", {}, "Вид"),
        h("th", {}, "От"), h("th", {}, "Куда"), h("th", {}, "Назначение"))),
      h("tbody", {}, transfers))) : null));
  }
}

function renderHistory(request) {
  const box = document.getElementById("history");
  box.textContent = "";
  const items = request.history || [];
  if (!items.length) {
    box.append(h("p", { class: "muted" }, "Изменений не было."));
    return;
  }
  box.append(h("ol", { class: "history-log" }, items.map((a) => h("li", {},
    h("time", { datetime: a.at }, fmtDateTime(a.at)), " ",
    h("strong", {}, HISTORY_LABELS[a.action] || a.action), " ",
    h("span", { class: "muted" }, a.user || "АТС"),
    a.fields && a.fields.length ? h("div", { class: "small muted" },
      "поля: " + a.fields.join(", ")) : null))));
}

closeButton.addEventListener("click", async () => {
  const request = form.request;
  if (!request) return;
  if (form.isDirty()) {
    form.showBanner("Сначала сохраните или отмените изменения в форме.", "warning");
    return;
  }
  const closed = await actionDialog({
    title: `Закрыть заявку № ${request.number}?`,
    text: "После закрытия редактирование заявки станет недоступно (пункт 24 Регламента).",
    submit: "Закрыть заявку", danger: true, labels: form.labels,
    run: () => api(`/api/v1/requests/${request.number}/close`, { method: "POST",
      body: { version: request.version } }),
  });
  if (closed) {
    form.load(closed);
    toast(`Заявка № ${closed.number} закрыта`, "success");
  }
});

// ---------------------------------------------------------------- audit
const auditForm = document.getElementById("audit-search");
let auditOffset = 0;
const datalist = document.getElementById("audit-actions");
for (const [code, label] of Object.entries(AUDIT_LABELS)) {
  datalist.append(h("option", { value: code }, label));
}

async function loadAudit() {
  const error = document.getElementById("audit-error");
  error.textContent = "";
  const params = new URLSearchParams();
  error.textContent = badDate(auditForm);
  if (error.textContent) return;
  for (const [key, value] of new FormData(auditForm).entries()) {
    let text = String(value).trim();
    if (text && auditForm.elements[key]?.dataset?.ruDate) text = isoFromRuDate(text);
    if (text) params.set(key, text);
  }
  if (params.get("request") && !/^\d+$/.test(params.get("request"))) {
    error.textContent = "Номер заявки — только цифры";
    return;
  }
  params.set("limit", PAGE);
  params.set("offset", auditOffset);
  const tbody = document.querySelector("#audit tbody");
  try {
    const { items, total } = await api(`/api/v1/audit?${params}`);
    tbody.textContent = "";
    if (!items.length) {
      tbody.append(h("tr", {}, h("td", { colspan: 6, class: "empty" }, "Записей нет")));
    }
    for (const e of items) {
      const detail = Object.entries(e.detail || {})
        .filter(([, v]) => v !== null && v !== "" && !(typeof v === "object" &&
          !Object.keys(v).length))
        .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join("; ");
      tbody.append(h("tr", { dataset: { action: e.action } },
        h("td", { class: "nowrap" }, fmtDateTime(e.at)),
        h("td", {}, e.user || "—"),
        h("td", {}, AUDIT_LABELS[e.action] || e.action),
        h("td", {}, e.request_number ? h("a", { href: `#/requests/${e.request_number}` },
          `№ ${e.request_number}`) : "—"),
        h("td", { class: "mono small" }, e.remote || "—"),
        h("td", { class: "small detail-cell", title: detail }, detail)));
    }
    const last = Math.min(auditOffset + items.length, total);
    document.getElementById("audit-page-info").textContent = total
      ? `Показаны ${auditOffset + 1}–${last} из ${total}` : "Ничего не найдено";
    document.getElementById("audit-prev").disabled = auditOffset === 0;
    document.getElementById("audit-next").disabled = auditOffset + PAGE >= total;
  } catch (exc) {
    error.textContent = exc.message;
  }
}

auditForm.addEventListener("submit", (e) => { e.preventDefault(); auditOffset = 0; loadAudit(); });
auditForm.addEventListener("reset", () => { auditOffset = 0; setTimeout(loadAudit, 0); });
document.getElementById("audit-prev").addEventListener("click", () => {
  auditOffset = Math.max(0, auditOffset - PAGE); loadAudit();
});
document.getElementById("audit-next").addEventListener("click", () => {
  auditOffset += PAGE; loadAudit();
});

// ---------------------------------------------------------------- completeness card
const MISMATCH_LABELS = {
  no_request: "нет заявки", no_recording: "нет записи разговора",
  not_in_cel: "заявка есть, звонка нет в CEL",
};
const cmpForm = document.getElementById("cmp-form");

async function loadCompleteness() {
  const body = document.getElementById("cmp-body");
  const error = document.getElementById("cmp-error");
  error.textContent = badDate(cmpForm);
  if (error.textContent) return;
  const raw = cmpForm.elements.date.value.trim();
  const params = new URLSearchParams();
  if (raw) params.set("date", isoFromRuDate(raw));
  body.textContent = "";
  try {
    const r = await api(`/api/v1/completeness?${params}`);
    body.append(
      h("p", { class: r.complete ? "cmp-ok" : "cmp-bad", dataset: { complete: String(r.complete) } },
        r.complete ? `${r.date}: журнал полон` : `${r.date}: не хватает ${r.missing}`),
      h("dl", { class: "cmp-figures" },
        h("dt", {}, "Звонков на 8-800 по CEL"), h("dd", { id: "cmp-calls" }, String(r.cel_calls)),
        h("dt", {}, "из них отвечено"), h("dd", {}, String(r.answered)),
        h("dt", {}, "Заявок"), h("dd", { id: "cmp-requests" }, String(r.requests)),
        h("dt", {}, "Записей привязано"), h("dd", {}, String(r.recordings_linked))));
    if (r.mismatches.length) {
      body.append(h("div", { class: "table-wrap" }, h("table", { class: "table compact",
        id: "cmp-mismatches" },
      h("caption", {}, "Расхождения"),
      h("thead", {}, h("tr", {}, h("th", {}, "Начало"), h("th", {}, "Телефон"),
        h("th", {}, "Заявка"), h("th", {}, "Расхождение"), h("th", {}, "Linkedid"))),
      h("tbody", {}, r.mismatches.map((m) => h("tr", { dataset: { kind: m.kind } },
        h("td", { class: "nowrap" }, fmtDateTime(m.started_at)),
        h("td", {}, callerText(m.caller, "—")),
        h("td", {}, m.request_number ? h("a", { href: `#/requests/${m.request_number}` },
          `№ ${m.request_number}`) : "—"),
        h("td", {}, MISMATCH_LABELS[m.kind] || m.kind),
        h("td", { class: "mono small" }, m.linkedid)))))));
    }
  } catch (exc) {
    if (exc.code === "cel_not_configured") {
      body.append(h("p", { class: "muted" }, exc.message));
    } else {
      error.textContent = exc.message;
    }
  }
}

cmpForm.addEventListener("submit", (e) => { e.preventDefault(); loadCompleteness(); });

// ---------------------------------------------------------------- routing between views
function show(view) {
  for (const id of ["list", "detail", "audit", "reports"]) {
    document.getElementById(`view-${id}`).hidden = id !== view;
  }
  const tabOf = { list: "requests", detail: "requests", audit: "audit", reports: "reports" };
  for (const tab of ["requests", "audit", "reports"]) {
    const el = document.getElementById(`tab-${tab}`);
    el.classList.toggle("active", tabOf[view] === tab);
    el.setAttribute("aria-selected", String(tabOf[view] === tab));
  }
}

async function route() {
  const hash = location.hash || "#/requests";
  const detail = hash.match(/^#\/requests\/(\d+)$/);
  if (detail) {
    show("detail");
    await openDetail(Number(detail[1]));
  } else if (hash.startsWith("#/reports") && reports) {
    show("reports");
    shown = null;
    if (!reports.data) await reports.load();
  } else if (hash.startsWith("#/audit") && canAudit) {
    show("audit");
    shown = null;
    await Promise.all([loadAudit(), loadCompleteness()]);
  } else {
    show("list");
    shown = null;
    await loadList();
  }
}

window.addEventListener("hashchange", route);

// ---------------------------------------------------------------- live updates
let listRefresh = null;
function onEvent(frame) {
  if (!frame.type.startsWith("request.") && !frame.type.startsWith("call.")) return;
  if (overdue && (frame.type === "call.ended" || frame.type.startsWith("request."))) {
    overdue.refreshSoon();
  }
  if (shown && frame.request_number === shown && form.request) {
    if (frame.type.startsWith("request.")) {
      form.externalUpdate(frame.type === "request.closed" ? Infinity : frame.version)
        .catch(() => {});
    } else if (frame.type === "call.ended" || frame.type === "call.transferred") {
      // The timeline grew: refresh the side panels if the form is untouched.
      if (!form.isDirty()) form.reload({ background: true }).catch(() => {});
    }
  }
  if (!document.getElementById("view-list").hidden && frame.type.startsWith("request.")) {
    clearTimeout(listRefresh);
    listRefresh = setTimeout(loadList, 500);
  }
}

// The administrator sees missed calls not called back in time (issue 15).
let overdue = null;
if (isAdmin) {
  const box = document.getElementById("missed-overdue-box");
  overdue = new MissedPanel(document.getElementById("missed-overdue"), {
    user, state: "overdue", onOpen: (number) => { location.hash = `#/requests/${number}`; },
    onData: (data) => { box.hidden = data.total === 0; } });  // shown while there are some
  overdue.load().catch(() => { box.hidden = true; });
  setInterval(() => overdue.refreshSoon(0), 60_000);
}

const stream = new EventStream({ onEvent, onState: showConnection });
stream.start();
await route();
document.body.dataset.ready = "1";
