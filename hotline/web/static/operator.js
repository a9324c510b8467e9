// Operator's workplace: the screen pop over the websocket, the request form, the script panel.
import {
  api, callerText, fillHeader, fmtDateTime, fmtTime, h, requireUser, smoLabel, STATUS_LABELS,
  TARGET_LABELS, toast,
} from "/static/common.js";
import { EventStream, showConnection } from "/static/events.js";
import { loadCard, loadConfig, loadTopics, RequestForm } from "/static/form.js";
import { MissedPanel } from "/static/missed.js";

const CALL_STATES = {
  ringing: "Звонит телефон",
  answered: "Разговор",
  held: "Гражданин на удержании",
  transferred: "Вызов переведён",
  ended: "Вызов завершён",
};
const SCRIPT_STEP = { ringing: "greeting", answered: "greeting", held: "transfer",
  transferred: "transfer", ended: "closing" };

const user = await requireUser(["operator", "admin"]);
fillHeader(user);
for (const el of document.querySelectorAll(".op-name")) el.textContent = user.login;
const [topics, config, requestCard] = await Promise.all([loadTopics(), loadConfig(),
  loadCard()]);
const smoNames = Object.fromEntries((config.smo || []).filter((s) => s.name)
  .map((s) => [s.code, s.name]));

const card = document.getElementById("call-card");
const notice = document.getElementById("call-notice");
const formRoot = document.getElementById("form-root");
const form = new RequestForm(formRoot, { user, card: requestCard, topics, config,
  actions: true });
const idleCard = [...card.childNodes].map((node) => node.cloneNode(true));
let call = null; // {number, caller, state, at, extension, history, detail}
const missed = new MissedPanel(document.getElementById("missed"), {
  user, onOpen: (number) => openRequest(number, false) });

function highlightScript(state) {
  const step = SCRIPT_STEP[state];
  for (const li of document.querySelectorAll("#script li")) {
    li.classList.toggle("current", li.dataset.step === step);
  }
}

function renderCard() {
  card.textContent = "";
  if (!call) {
    card.dataset.state = "idle";
    card.append(...idleCard.map((node) => node.cloneNode(true)));
    return;
  }
  card.dataset.state = call.state;
  card.dataset.number = call.number;
  const history = call.history || [];
  card.append(...[
    h("div", { class: "call-head" },
      h("span", { class: "call-state", id: "call-state" }, CALL_STATES[call.state] || call.state),
      h("span", { class: "call-time muted small" }, fmtTime(call.at))),
    h("div", { class: "call-caller", id: "pop-caller" },
      callerText(call.caller, "номер не определён")),
    h("div", { class: "call-number" }, "Заявка ",
      h("strong", { id: "pop-number" }, `№ ${call.number}`)),
    call.detail ? h("div", { class: "call-detail", id: "call-detail" }, call.detail) : null,
    h("h3", { class: "history-title" }, history.length
      ? `Ранее обращался: ${history.length}` : "Ранее не обращался"),
    history.length ? h("ul", { class: "history", id: "pop-history" }, history.map((item) =>
      h("li", {}, h("button", { type: "button", class: "link", onclick: () => openRequest(
        item.number) }, `№ ${item.number}`), " ", h("span", { class: "muted small" },
        fmtDateTime(item.created_at)), " ",
      h("span", { class: `badge status-${item.status}` }, STATUS_LABELS[item.status] ||
        item.status),
      item.topic ? h("div", { class: "small" }, topicLabel(item.topic)) : null))) : null,
    call.number !== form.request?.number
      ? h("button", { type: "button", class: "btn btn-primary btn-block",
        onclick: () => openRequest(call.number, true) }, "Открыть заявку вызова") : null,
  ].filter(Boolean));
  highlightScript(call.state);
}

/** The call moved on (answered, ended): show the fresh status/operator unless typing. */
function refreshForm(number) {
  if (form.request && form.request.number === number && !form.isDirty()) {
    form.reload({ background: true }).catch(() => {});
  }
}

function topicLabel(code) {
  return (topics.find((t) => t.code === code) || {}).label || code;
}

async function openRequest(number, force = false) {
  if (form.isDirty() && form.request?.number !== number && !force) {
    notice.textContent = `В форме заявки № ${form.request.number} есть несохранённые ` +
      `изменения. Сохраните их и откройте заявку № ${number}.`;
    notice.hidden = false;
    renderCard();
    return;
  }
  if (force && form.isDirty() && !confirm("Несохранённые изменения будут потеряны. Продолжить?")) {
    return;
  }
  notice.hidden = true;
  try {
    const request = await api(`/api/v1/requests/${number}`);
    form.load(request);
    document.getElementById("form-title").textContent = `Заявка № ${request.number}`;
  } catch (exc) {
    toast(exc.message, "error");
  }
  renderCard();
}

function onEvent(frame) {
  const mine = user.extension && frame.extension === user.extension;
  // A call ended (missed, or a call-back's outcome) or a request changed: the list may too.
  if (frame.type === "call.ended" || frame.type.startsWith("request.")) missed.refreshSoon();
  switch (frame.type) {
    case "call.ringing":
      if (!mine) return;
      call = { number: frame.request_number, caller: frame.caller_number, state: "ringing",
        at: frame.at, history: frame.history || [], extension: frame.extension };
      renderCard();
      openRequest(frame.request_number);
      return;
    case "call.answered":
      if (call && frame.request_number === call.number) {
        call.state = "answered";
        call.detail = frame.extension && frame.extension !== user.extension
          ? `Ответил доб. ${frame.extension}` : null;
        renderCard();
        refreshForm(frame.request_number);
      }
      break;
    case "call.held":
    case "call.unheld":
      if (call && frame.request_number === call.number) {
        call.state = frame.type === "call.held" ? "held" : "answered";
        renderCard();
      }
      break;
    case "call.transferred":
      if (call && frame.request_number === call.number) {
        call.state = "transferred";
        const where = frame.target === "smo"
          ? `в ${smoLabel(frame.smo, smoNames)}`
          : `${TARGET_LABELS[frame.target] || ""} (${frame.to || ""})`;
        call.detail = `Переведён ${where}`.trim();
        renderCard();
      }
      break;
    case "call.ended":
      if (call && frame.request_number === call.number) {
        call.state = "ended";
        renderCard();
        highlightScript("ended");
        refreshForm(frame.request_number);
      }
      break;
    default:
      break;
  }
  // Handed to an SMO: by the PBX (request.routed) or from a form (request.updated comes
  // first and is the last note of that request a fund operator receives).
  const leaves = ["request.routed", "request.updated"].includes(frame.type) &&
    frame.level === "smo" && user.role === "operator";
  if (leaves && call && frame.request_number === call.number) {
    call.state = call.state === "ended" ? "ended" : "transferred";
    call.detail = `Передана в ${smoLabel(frame.smo, smoNames)}`;
    renderCard();
  }
  if (leaves && form.request && frame.request_number === form.request.number) {
    // Operators of the fund do not see requests under an SMO's review (regulation §23).
    form.retire(frame.request_number, `Заявка № ${frame.request_number} передана в ` +
      `${smoLabel(frame.smo, smoNames)}: дальнейшая работа ведётся в СМО.`);
    return;
  }
  if (frame.type.startsWith("request.") && form.request &&
      frame.request_number === form.request.number) {
    form.externalUpdate(frame.type === "request.closed" ? Infinity : frame.version)
      .catch(() => {});
  }
}

// A call already ringing/answered at my extension when the page (re)loads.
async function restoreActive() {
  if (!user.extension) return;
  try {
    const { items } = await api("/api/v1/calls/active");
    const active = items.find((c) => c.operator === user.extension);
    if (active && !call) {
      // The same caller history as the live screen pop (the server builds both alike).
      call = { number: active.request_number, caller: active.caller_number,
        state: active.answered_at ? "answered" : "ringing", at: active.started_at,
        history: active.history || [] };
      renderCard();
      openRequest(active.request_number);
    }
  } catch { /* not important */ }
}

document.getElementById("open-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const input = document.getElementById("open-number");
  const error = document.getElementById("open-error");
  const value = input.value.trim();
  error.textContent = "";
  if (!/^\d{1,18}$/.test(value)) {
    error.textContent = "Введите номер заявки (цифры)";
    return;
  }
  try {
    await api(`/api/v1/requests/${value}`);
    await openRequest(Number(value), true);
  } catch (exc) {
    error.textContent = exc.message;
  }
});

window.addEventListener("beforeunload", (event) => {
  if (form.isDirty()) event.preventDefault();
});

const stream = new EventStream({ onEvent, onState: showConnection });
window.__hotlineStream = stream;
stream.start();
restoreActive();
missed.load().catch((exc) => toast(exc.message, "error"));
setInterval(() => missed.refreshSoon(0), 60_000);  // overdue marks move on with the clock
document.body.dataset.ready = "1";
