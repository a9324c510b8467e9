// The "Отчёты" view of the console (regulation §36-38): a month or a quarter, optionally
// compared with the previous one; requests by kind, topic, level, SMO, status, outcome,
// operator; call figures per line and hour; call-backs done on time; SVG charts; CSV / XLSX
// downloads of the same summary (GET /api/v1/reports/summary[.csv|.xlsx]).
import {
  api, h, LEVEL_LABELS, OUTCOME_LABELS, smoLabel, STATUS_LABELS,
} from "/static/common.js";
import { barList, columnChart } from "/static/charts.js";

export const REPORT_ROLES = ["admin", "auditor", "smo"];
const MONTHS = ["январь", "февраль", "март", "апрель", "май", "июнь", "июль", "август",
  "сентябрь", "октябрь", "ноябрь", "декабрь"];
const QUARTERS = ["I", "II", "III", "IV"];
const NONE = "none";
const number = new Intl.NumberFormat("ru-RU");

const DIMENSIONS = [
  ["by_kind", "Вид обращения"],
  ["by_topic", "Тема"],
  ["by_level", "Уровень"],
  ["by_smo", "СМО"],
  ["by_status", "Статус"],
  ["by_outcome", "Исход вызова"],
  ["by_operator", "Оператор"],
  ["by_redirect", "Переадресация"],
];
const FLAGS = [
  ["corruption", "Сведения о коррупции"], ["urgent", "Срочные"],
  ["written_appeal_advised", "Рекомендовано письменное обращение"], ["typical", "Типовые"],
  ["deferred", "С отсроченным ответом"], ["closed", "Закрыто"],
  ["corrections", "Исправления закрытых"],
];
// The regulation's analytical reports (GET /api/v1/reports/{key}): generic tables of typed
// columns, headline figures compared with the previous period and a year earlier.
export const REPORTS = [
  ["summary", "Сводка"],
  ["register", "Реестр обращений"],
  ["by_period", "Заявки по периодам"],
  ["by_kind", "Обращения по видам"],
  ["topic_kind", "Темы обращений по видам"],
  ["by_smo", "Обращения, переданные в СМО"],
  ["by_operator", "Работа операторов"],
  ["service_level", "Уровень обслуживания линии"],
  ["missed", "Пропущенные звонки и перезвоны"],
  ["deferred_urgent", "Отсроченные ответы и срочные вмешательства"],
];
const REGISTER_PAGE = 100;
const CALL_COLUMNS = [
  ["offered", "Поступило", "count"], ["answered", "Отвечено", "count"],
  ["abandoned", "Потеряно", "count"], ["service_level", "Уровень сервиса (≤ 20 с)", "percent"],
  ["avg_wait_s", "Ср. ожидание", "seconds"], ["max_wait_s", "Макс. ожидание", "seconds"],
  ["talk_s", "Разговор, всего", "seconds"], ["avg_talk_s", "Ср. разговор", "seconds"],
];

// ---------------------------------------------------------------- formatting
export function fmtSeconds(value) {
  if (value == null) return "—";
  const s = Math.round(value);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(s >= 3600 ? 2 : 1, "0");
  const ss = String(s % 60).padStart(2, "0");
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mm}:${ss}` : `${mm}:${ss}`;
}

export function fmtPercent(ratio) {
  if (ratio == null) return "—";
  return `${(ratio * 100).toFixed(1).replace(".", ",")} %`;
}

function fmt(value, kind) {
  if (kind === "percent") return fmtPercent(value);
  if (kind === "seconds") return fmtSeconds(value);
  if (kind === "text") return value == null || value === "" ? "—" : String(value);
  if (kind === "days" || kind === "hours") {
    return value == null ? "—" : Number(value).toFixed(kind === "days" ? 2 : 1).replace(".", ",");
  }
  if (kind === "int" && typeof value === "string") return value;
  return value == null ? "—" : number.format(value);
}

export function periodTitle(label) {
  const month = label.match(/^(\d{4})-(\d{2})$/);
  if (month) return `${MONTHS[Number(month[2]) - 1]} ${month[1]}`;
  const quarter = label.match(/^(\d{4})-Q([1-4])$/);
  if (quarter) return `${QUARTERS[Number(quarter[2]) - 1]} квартал ${quarter[1]}`;
  return label;
}

/** Today's month in the fund's time zone: "YYYY-MM". */
function currentMonth(timeZone) {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric",
    month: "2-digit" }).formatToParts(new Date());
  const get = (type) => parts.find((p) => p.type === type).value;
  return `${get("year")}-${get("month")}`;
}

function change(current, previous, kind = "count") {
  if (previous == null || current == null) return null;
  const diff = current - previous;
  if (kind === "percent") {
    const points = (diff * 100).toFixed(1).replace(".", ",");
    return `${diff > 0 ? "+" : ""}${points} п.п.`;
  }
  if (kind === "seconds") return `${diff > 0 ? "+" : diff < 0 ? "−" : ""}${fmtSeconds(Math.abs(diff))}`;
  return `${diff > 0 ? "+" : diff < 0 ? "−" : ""}${number.format(Math.abs(diff))}`;
}

// ---------------------------------------------------------------- the view
export class ReportsView {
  constructor({ user, config, topicNames, smoNames }) {
    this.user = user;
    this.config = config;
    this.topicNames = topicNames;
    this.smoNames = smoNames;
    this.redirectNames = Object.fromEntries((config.redirect_targets || [])
      .map((t) => [t.code, t.name]));
    this.form = document.getElementById("report-form");
    this.body = document.getElementById("report-body");
    this.error = document.getElementById("report-error");
    this.data = null;
    this._setup();
  }

  _setup() {
    const tz = this.config.timezone || "Europe/Moscow";
    const month = currentMonth(tz);
    const [year, mm] = month.split("-").map(Number);
    this.form.month.value = month;
    this.form.year.value = year;
    this.form.quarter.value = String(Math.floor((mm - 1) / 3) + 1);
    for (const [key, title] of REPORTS) {
      this.form.report.append(h("option", { value: key }, title));
    }
    const smo = this.form.smo;
    for (const s of this.config.smo || []) {
      smo.append(h("option", { value: s.code }, smoLabel(s.code, this.smoNames)));
    }
    document.getElementById("r-smo-wrap").hidden = this.user.role === "smo";
    const kind = this.form.kind;
    const sync = () => {
      const quarter = kind.value === "quarter";
      document.getElementById("r-month-wrap").hidden = quarter;
      document.getElementById("r-year-wrap").hidden = !quarter;
      document.getElementById("r-quarter-wrap").hidden = !quarter;
    };
    kind.addEventListener("change", sync);
    sync();
    this.form.addEventListener("submit", (e) => { e.preventDefault(); this.load(); });
  }

  /** The query of the chosen period, or null (with a message) when it is not valid. */
  query() {
    const f = this.form;
    let period;
    if (f.kind.value === "quarter") {
      const year = String(f.year.value).trim();
      if (!/^\d{4}$/.test(year)) {
        this.error.textContent = "Год — четыре цифры, например 2026";
        return null;
      }
      period = `${year}-Q${f.quarter.value}`;
    } else {
      period = String(f.month.value).trim();
      if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(period)) {
        this.error.textContent = "Выберите месяц";
        return null;
      }
    }
    const params = new URLSearchParams({ period });
    if (f.compare.checked && f.report.value === "summary") params.set("compare", "1");
    if (this.user.role !== "smo" && f.smo.value) params.set("smo", f.smo.value);
    return params;
  }

  async load() {
    this.error.textContent = "";
    const params = this.query();
    if (!params) return;
    const key = this.form.report.value || "summary";
    for (const [id, ext] of [["report-csv", "csv"], ["report-xlsx", "xlsx"]]) {
      document.getElementById(id).href = `/api/v1/reports/${key}.${ext}?${params}`;
    }
    const whole = new URLSearchParams(params);
    whole.delete("compare");
    document.getElementById("report-workbook").href = `/api/v1/reports/quarterly.xlsx?${whole}`;
    this.body.dataset.state = "loading";
    this.body.dataset.report = key;
    const query = key === "summary" ? params : whole;
    if (key === "register") query.set("limit", String(REGISTER_PAGE));
    try {
      this.data = await api(`/api/v1/reports/${key}?${query}`);
    } catch (exc) {
      this.error.textContent = exc.message;
      this.body.dataset.state = "error";
      return;
    }
    if (key === "register") this.renderRegister(this.data);
    else if (key !== "summary") this.renderAnalytics(this.data);
    else this.render(this.data);
    this.body.dataset.state = "ready";
    this.body.dataset.period = this.data.period;
  }

  // -------------------------------------------------------------- analytical reports
  renderAnalytics(data) {
    this.body.textContent = "";
    const scope = data.smo ? ` · ${smoLabel(data.smo, this.smoNames)}` : "";
    const periods = [["current", periodTitle(data.period)],
      ["previous", data.compare.previous ? `${periodTitle(data.compare.previous.period)}` +
        " (пред. период)" : "пред. период"],
      ["year_ago", data.compare.year_ago ? `${periodTitle(data.compare.year_ago.period)}` +
        " (год назад)" : "год назад"]];
    const headline = h("table", { class: "table compact report-table", id: "rep-compare" },
      h("caption", {}, "Сравнение периодов"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Показатель"),
        periods.map(([, title]) => h("th", { scope: "col", class: "num" }, title)))),
      h("tbody", {}, Object.entries(data.headline).map(([key, value]) => {
        const kind = key === "service_level" ? "percent" : "count";
        const values = [value, data.compare.previous?.headline[key],
          data.compare.year_ago?.headline[key]];
        return h("tr", { dataset: { key } }, h("td", {}, data.headline_titles[key] || key),
          values.map((v, i) => h("td", { class: "num", dataset: { period: periods[i][0],
            value: v ?? "" } }, fmt(v, kind))));
      })));
    this.body.append(
      h("p", { class: "report-period", id: "report-period" },
        h("strong", {}, `${data.title}: ${periodTitle(data.period)}`), scope),
      h("section", { class: "panel report-section" }, h("div", { class: "table-wrap" },
        headline)),
      ...data.sections.map((section) => this._section(section)));
  }

  _section(section) {
    const first = section.columns[0].key;
    const cells = (row, cls) => h("tr", { class: cls, dataset: { key: row[first] } },
      section.columns.map((c, i) => h("td", { class: i && c.kind !== "text" ? "num" : null,
        dataset: { metric: c.key, value: row[c.key] ?? "" } }, fmt(row[c.key], c.kind))));
    const table = h("table", { class: "table compact report-table", id: `rep-${section.key}` },
      h("thead", {}, h("tr", {}, section.columns.map((c, i) => h("th", { scope: "col",
        class: i && c.kind !== "text" ? "num" : null }, c.title)))),
      h("tbody", {}, section.rows.length ? section.rows.map((row) => cells(row))
        : h("tr", {}, h("td", { colspan: section.columns.length, class: "empty" },
          "Нет данных"))),
      section.totals ? h("tfoot", {}, cells(section.totals, "total-row")) : null);
    const chart = section.chart && section.rows.length ? h("div", { class: "chart-box",
      id: `chart-${section.key}` }, barList({ title: section.title, rows: section.rows.map(
      (row) => ({ label: String(row[first]), value: Number(row[section.chart]) || 0 })) }))
      : null;
    return h("section", { class: "panel report-section", dataset: { section: section.key } },
      h("h2", {}, section.title), chart, h("div", { class: "table-wrap" }, table));
  }

  renderRegister(data) {
    this.body.textContent = "";
    const table = h("table", { class: "table compact report-table", id: "rep-register" },
      h("thead", {}, h("tr", {}, data.columns.map((c) => h("th", { scope: "col" }, c.title)))),
      h("tbody", {}, data.items.length ? data.items.map((row) => h("tr", {
        dataset: { key: row.number } }, data.columns.map((c) => h("td", {
        dataset: { metric: c.key } }, fmt(row[c.key], "text")))))
        : h("tr", {}, h("td", { colspan: data.columns.length, class: "empty" }, "Нет заявок"))));
    this.body.append(
      h("p", { class: "report-period", id: "report-period" },
        h("strong", {}, `${data.title}: ${periodTitle(data.period)}`),
        h("span", { class: "muted", id: "rep-register-count", dataset: { total: data.total } },
          ` · показано ${number.format(data.items.length)} из ${number.format(data.total)}` +
          (data.total > data.items.length ? " (весь реестр — в файле CSV или XLSX)" : ""))),
      h("section", { class: "panel report-section" }, h("div", { class: "table-wrap" }, table)));
  }

  // -------------------------------------------------------------- rendering
  render(data) {
    const prev = data.previous || null;
    this.body.textContent = "";
    const scope = data.smo ? ` · ${smoLabel(data.smo, this.smoNames)}` : "";
    this.body.append(
      h("p", { class: "report-period", id: "report-period" },
        h("strong", {}, `Период: ${periodTitle(data.period)}`), scope,
        prev ? h("span", { class: "muted" }, ` · сравнение с: ${periodTitle(prev.period)}`)
          : null),
      this._kpis(data, prev),
      this._requests(data, prev),
      this._calls(data, prev),
      this._callbacks(data, prev),
    );
  }

  _kpis(data, prev) {
    const total = data.calls.total;
    const ptotal = prev?.calls.total;
    const cb = data.callbacks;
    const items = [
      ["requests.total", "Заявок", data.requests.total, prev?.requests.total],
      ["calls.total.offered", "Звонков поступило", total.offered, ptotal?.offered],
      ["calls.total.answered", "Отвечено", total.answered, ptotal?.answered],
      ["calls.total.abandoned", "Потеряно", total.abandoned, ptotal?.abandoned],
      ["calls.total.service_level", "Уровень сервиса (≤ 20 с)", total.service_level,
        ptotal?.service_level, "percent"],
      ["calls.total.avg_wait_s", "Среднее ожидание", total.avg_wait_s, ptotal?.avg_wait_s,
        "seconds"],
      ["calls.total.max_wait_s", "Максимальное ожидание", total.max_wait_s,
        ptotal?.max_wait_s, "seconds"],
      ["calls.total.talk_s", "Время разговоров", total.talk_s, ptotal?.talk_s, "seconds"],
      ["callbacks.done_on_time", `Перезвонили в срок (из ${cb.due})`, cb.done_on_time,
        prev?.callbacks.done_on_time],
    ];
    return h("div", { class: "kpis", id: "report-kpis" }, items.map(
      ([key, label, value, before, kind = "count"]) => {
        const delta = prev ? change(value, before, kind) : null;
        return h("div", { class: "kpi panel", dataset: { figure: key } },
          h("div", { class: "kpi-label" }, label),
          h("div", { class: "kpi-value", dataset: { value: value ?? "" } }, fmt(value, kind)),
          delta ? h("div", { class: "kpi-change muted small" }, `${delta} к прошлому периоду`)
            : null);
      }));
  }

  _label(dim, key) {
    if (key === NONE) return "не указано";
    switch (dim) {
      case "by_topic": return this.topicNames[key] || key;
      case "by_level": return LEVEL_LABELS[key] || key;
      case "by_smo": return smoLabel(key, this.smoNames);
      case "by_status": return STATUS_LABELS[key] || key;
      case "by_outcome": return OUTCOME_LABELS[key] || key;
      case "by_operator": return `доб. ${key}`;
      case "by_redirect": return this.redirectNames[key] || key;
      default: return key;
    }
  }

  _countTable(id, caption, rows, withPrev) {
    return h("div", { class: "table-wrap" }, h("table", { class: "table compact report-table",
      id, dataset: { dim: id.replace(/^rep-/, "") } },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Значение"),
      h("th", { scope: "col", class: "num" }, "Число"),
      withPrev ? h("th", { scope: "col", class: "num" }, "Пред. период") : null)),
    h("tbody", {}, rows.length ? rows.map((r) => h("tr", { dataset: { key: r.key } },
      h("td", {}, r.label),
      h("td", { class: "num", dataset: { value: r.value } }, number.format(r.value)),
      withPrev ? h("td", { class: "num muted" }, number.format(r.previous || 0)) : null))
      : h("tr", {}, h("td", { colspan: withPrev ? 3 : 2, class: "empty" }, "Нет данных")))));
  }

  _requests(data, prev) {
    const tables = DIMENSIONS.map(([dim, caption]) => {
      const counts = data.requests[dim] || {};
      const before = prev?.requests[dim] || {};
      const keys = [...new Set([...Object.keys(counts), ...Object.keys(before)])];
      const rows = keys.map((key) => ({ key, label: this._label(dim, key),
        value: counts[key] || 0, previous: before[key] || 0 }))
        .sort((a, b) => b.value - a.value || a.label.localeCompare(b.label, "ru"));
      return this._countTable(`rep-${dim}`, caption, rows, Boolean(prev));
    });
    const flags = FLAGS.map(([key, label]) => ({ key, label, value: data.requests[key] || 0,
      previous: prev?.requests[key] || 0 }));
    tables.push(this._countTable("rep-flags", "Отметки", flags, Boolean(prev)));
    const topics = Object.entries(data.requests.by_topic || {})
      .map(([key, value]) => ({ label: this._label("by_topic", key), value }))
      .sort((a, b) => b.value - a.value);
    return h("section", { class: "panel report-section", "aria-labelledby": "rep-req-title" },
      h("h2", { id: "rep-req-title" }, "Заявки"),
      h("div", { class: "report-grid" }, tables),
      h("h3", {}, "Заявки по темам"),
      h("div", { class: "chart-box", id: "chart-topics" }, topics.length
        ? barList({ title: "Заявки по темам", rows: topics })
        : h("p", { class: "muted" }, "Нет заявок за период.")));
  }

  _callTable(id, caption, keyLabel, rows, total) {
    const head = h("tr", {}, h("th", { scope: "col" }, keyLabel),
      CALL_COLUMNS.map(([, label]) => h("th", { scope: "col", class: "num" }, label)));
    const line = (key, label, figures, cls) => h("tr", { class: cls, dataset: { key } },
      h("td", {}, label),
      CALL_COLUMNS.map(([name, , kind]) => h("td", { class: "num",
        dataset: { metric: name, value: figures[name] ?? "" } }, fmt(figures[name], kind))));
    return h("div", { class: "table-wrap" }, h("table", { class: "table compact report-table",
      id }, h("caption", {}, caption), h("thead", {}, head),
    h("tbody", {}, rows.length ? rows.map(([key, label, figures]) => line(key, label, figures))
      : h("tr", {}, h("td", { colspan: CALL_COLUMNS.length + 1, class: "empty" },
        "Звонков не было"))),
    total ? h("tfoot", {}, line("total", "Итого", total, "total-row")) : null));
  }

  _calls(data, prev) {
    const calls = data.calls;
    const lines = Object.entries(calls.by_line).sort()
      .map(([line, figures]) => [line, line, figures]);
    const hours = Object.entries(calls.by_hour).sort()
      .map(([hour, figures]) => [hour, `${hour}:00–${hour}:59`, figures]);
    const all = Array.from({ length: 24 }, (_, i) => String(i).padStart(2, "0"));
    const pick = (name) => all.map((hh) => calls.by_hour[hh]?.[name] || 0);
    const chart = columnChart({
      title: "Звонки по часам суток", categories: all,
      series: [
        { name: "поступило", cls: "bar-primary", values: pick("offered") },
        { name: "отвечено", cls: "bar-success", values: pick("answered") },
        { name: "потеряно", cls: "bar-danger", values: pick("abandoned") },
      ],
    });
    const legend = h("div", { class: "chart-legend small" },
      [["bar-primary", "поступило"], ["bar-success", "отвечено"], ["bar-danger", "потеряно"]]
        .map(([cls, label]) => h("span", { class: `legend ${cls}` }, label)));
    const previous = prev ? h("p", { class: "muted small" },
      `Прошлый период: поступило ${number.format(prev.calls.total.offered)}, отвечено ` +
      `${number.format(prev.calls.total.answered)}, потеряно ` +
      `${number.format(prev.calls.total.abandoned)}, уровень сервиса ` +
      `${fmtPercent(prev.calls.total.service_level)}.`) : null;
    return h("section", { class: "panel report-section", "aria-labelledby": "rep-calls-title" },
      h("h2", { id: "rep-calls-title" }, "Звонки на линию"),
      this._callTable("rep-lines", "По линиям (набранный номер)", "Линия", lines, calls.total),
      previous,
      h("p", { class: "small" }, "Исходящих звонков гражданам: ",
        h("strong", { id: "rep-outbound", dataset: { value: calls.outbound } },
          number.format(calls.outbound))),
      h("h3", {}, "По часам суток"),
      h("div", { class: "chart-box", id: "chart-hours" }, chart, legend),
      this._callTable("rep-hours", "По часам (время московское)", "Час", hours, null));
  }

  _callbacks(data, prev) {
    const cb = data.callbacks;
    const rows = [["due", "Срок ответа в периоде"], ["done", "Ответ дан"],
      ["done_on_time", "Ответ дан в срок"], ["overdue_open", "Просрочено, не отвечено"]]
      .map(([key, label]) => ({ key, label, value: cb[key], previous: prev?.callbacks[key] }));
    const share = cb.due ? fmtPercent(cb.done_on_time / cb.due) : "—";
    return h("section", { class: "panel report-section", "aria-labelledby": "rep-cb-title" },
      h("h2", { id: "rep-cb-title" }, "Отсроченные ответы (перезвоны)"),
      h("p", {}, "Выполнено в срок: ", h("strong", { id: "rep-cb-share" }, share)),
      this._countTable("rep-callbacks", "Перезвоны", rows, Boolean(prev)));
  }
}
