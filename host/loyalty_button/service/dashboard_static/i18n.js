// Every word the dashboard shows, in each language it speaks. The page
// takes the language the manager picked (kept in this browser), else the
// browser's own; a key missing in a language falls back to English.
// {name} in a text is filled in from the figures.
"use strict";
const STRINGS = {
  en: {
    title: "Loyalty Button", store: "store {store}", computing: "computing the reports…",
    export: "Export records (CSV)", logout: "Log out",
    backup: "Store backup",
    backup_note: "Everything a new host needs to become this store: records, settings, question catalogue, dashboard users, the POS key and token, the panels' logins and the broker's CA. It is sealed with the passphrase you choose here: keep it apart from the file; without it the backup cannot be restored. On a new host, the set-up page's first choice restores it.",
    backup_passphrase: "Passphrase for the backup (8 characters or more)", backup_again: "The passphrase again",
    backup_password: "Your dashboard password", backup_make: "Make and download the backup",
    backup_making: "Making the backup… the download starts when it is ready.",
    backup_error_mismatch: "The two passphrases differ.", backup_error_short: "The passphrase needs 8 characters or more.",
    backup_error_password: "That is not your dashboard password.", backup_error_failed: "The backup failed on the host; its log says why.",
    user: "User", password: "Password", login: "Log in", wrong_login: "Wrong user name or password.",
    period: "Period: ", range_all: "all time", range_today: "today", range_yesterday: "yesterday",
    range_7d: "last 7 days", range_30d: "last 30 days", range_custom: "dates…",
    range_vs: "compared with the {days} day(s) before",
    nps: "NPS", response: "Response rate", csat: "CSAT",
    ci: "95% interval {low} to {high} · {n} answers", no_answers: "no answers yet",
    split: "{pro} promoters · {pas} passives · {det} detractors · {dec} declined or timed out",
    burst: " · {n} button-mashing answers left out",
    too_few: "too few answers", too_few_card: "too few answers to mean much ({n}; 10 or more)",
    rate_detail: "{answered} answered of {asked} asked · declined {declined} · timed out {timeout} · superseded {superseded} · no reply {no_reply}",
    not_asked_offline: "Not asked because the panel was offline: {n} of {receipts} receipts since the host started",
    csat_dist: "1–5: {dist} · {pct}% satisfied",
    prev: "before: {value}", prev_none: "before: no answers",
    answers: "Yes/no and choice questions", answers_note: "All time; the bar's whisker is the 95% interval of the share; per till, the interval in brackets.",
    answer_row: "{n} · {pct}% (95%: {low}–{high}%)", answers_n: "{n} answers", no_choice_answers: "none asked yet",
    yes: "Yes", no: "No",
    trend: "Trend", by_day: "by day", by_week: "by week", trend_label: "NPS trend with its 95% interval",
    week_hours: "Hours of the week", week_hours_note: "NPS answers per hour of the week in the period; grey: fewer than 10, too few to compare.",
    breakdown: "Breakdown", all_time_note: "All time.", period_note: "In the period picked above.", table_csv: "This table as CSV",
    reasons: "Why shoppers answered as they did", no_reasons: "no reasons given yet",
    panels: "Panels", forwarding: "Forwarding", dead_letters: "Dead letters",
    col_panel: "panel", col_state: "state", col_firmware: "firmware", col_update: "update",
    col_board: "board", col_adverts: "adverts ready", col_last_answer: "last answer",
    col_outbox: "outbox", col_destination: "destination", col_pending: "pending", col_sent: "sent",
    col_dead: "dead", col_last_error: "last error", col_record: "record", col_attempts: "attempts",
    col_error: "error", col_answers: "answers", col_ci: "95% interval", col_response: "response",
    none: "(none)", resend: "Re-send dead letters", never_connected: "never connected", headless: "headless",
    ready_of: "{ready} of {planned}", refused: "refused: {list}",
    state_online: "online", state_offline: "offline", state_switching: "updating",
    by_store: "store", by_till: "till", by_cashier: "cashier", by_question: "question",
    by_language: "language", by_hour: "hour", by_member: "member", by_segment: "segment",
    by_advert: "advert", by_emotion: "emotion",
    group_promoter: "promoters (9–10)", group_passive: "passives (7–8)", group_detractor: "detractors (0–6)",
    group_kind: "{kind} “{value}”",
    weekdays: "Mon Tue Wed Thu Fri Sat Sun",
    // The health banner: what is wrong, and what to do about it.
    health_broker_down: "The panels' message broker is down: no panel can be asked.",
    todo_broker_down: "Restart the store host, or call support.",
    health_catalogue_refused: "The last edit of the question catalogue was refused: {error}",
    todo_catalogue_refused: "The panels still ask the previous questions. Fix the file and save it again.",
    health_catalogue_texts_cut: "{n} text(s) of the question catalogue do not fit a panel's screen and are shown cut, e.g. {first}",
    todo_catalogue_texts_cut: "Shorten them in the catalogue (the host's log lists them all).",
    health_destination_dead: "{dest} refused {dead} record(s) for good (see Dead letters).",
    todo_destination_dead: "Check {dest}'s settings, then press “Re-send dead letters” under Forwarding.",
    health_destination_stuck: "{dest} has received nothing for {minutes} min: {pending} record(s) waiting. {error}",
    todo_destination_stuck: "Check the link to {dest} and its password; nothing is lost, the records wait here.",
    health_panel_never_connected: "The panel of till {till} ({panel}) has never connected.",
    todo_panel_never_connected: "Power it on and check its Wi-Fi; the installer's station can set it up again.",
    health_panel_offline: "The panel of till {till} ({panel}) is {state}.",
    todo_panel_offline: "Check its power and Wi-Fi. Shoppers at that till are not being asked.",
    health_receipts_not_asked: "{pct}% of receipts ({offline} of {receipts}) found their panel offline: those shoppers were never asked.",
    todo_receipts_not_asked: "See which panel is offline in the table below.",
    health_host_unreachable: "The store host is not answering since {since}: the figures below are from then.",
    todo_host_unreachable: "Check the host's power and network; the page retries by itself.",
    all_well: "",
  },
  ru: {
    title: "Кнопка лояльности", store: "магазин {store}", computing: "отчёты считаются…",
    export: "Выгрузить записи (CSV)", logout: "Выйти",
    backup: "Резервная копия магазина",
    backup_note: "Всё, что нужно новому компьютеру, чтобы стать этим магазином: записи, настройки, каталог вопросов, пользователи панели отчётов, ключ и токен POS, входы панелей и сертификат брокера. Копия защищена паролем, который вы зададите здесь: храните его отдельно от файла, без него копию не восстановить. На новом компьютере её восстанавливает первый пункт страницы настройки.",
    backup_passphrase: "Пароль копии (не короче 8 символов)", backup_again: "Пароль копии ещё раз",
    backup_password: "Ваш пароль панели отчётов", backup_make: "Сделать и скачать копию",
    backup_making: "Копия готовится… загрузка начнётся, когда она будет готова.",
    backup_error_mismatch: "Пароли копии не совпадают.", backup_error_short: "Пароль копии должен быть не короче 8 символов.",
    backup_error_password: "Это не ваш пароль панели отчётов.", backup_error_failed: "Копию сделать не удалось; причина в журнале сервера.",
    user: "Пользователь", password: "Пароль", login: "Войти", wrong_login: "Неверное имя пользователя или пароль.",
    period: "Период: ", range_all: "всё время", range_today: "сегодня", range_yesterday: "вчера",
    range_7d: "последние 7 дней", range_30d: "последние 30 дней", range_custom: "даты…",
    range_vs: "в сравнении с {days} дн. до этого",
    nps: "NPS", response: "Доля ответов", csat: "CSAT",
    ci: "95% интервал от {low} до {high} · ответов: {n}", no_answers: "ответов пока нет",
    split: "промоутеры {pro} · нейтралы {pas} · критики {det} · отказались или не успели {dec}",
    burst: " · не учтено нажатий подряд: {n}",
    too_few: "мало ответов", too_few_card: "слишком мало ответов для выводов ({n}; нужно 10 и больше)",
    rate_detail: "ответили {answered} из {asked} · отказались {declined} · не успели {timeout} · вытеснены {superseded} · нет ответа от панели {no_reply}",
    not_asked_offline: "Не спросили, потому что панель была недоступна: {n} из {receipts} чеков с запуска сервера",
    csat_dist: "1–5: {dist} · довольны {pct}%",
    prev: "до этого: {value}", prev_none: "до этого: ответов нет",
    answers: "Вопросы «да/нет» и с выбором", answers_note: "За всё время; черта на полосе — 95% интервал доли; по кассам интервал в скобках.",
    answer_row: "{n} · {pct}% (95%: {low}–{high}%)", answers_n: "ответов: {n}", no_choice_answers: "такие вопросы пока не задавали",
    yes: "Да", no: "Нет",
    trend: "Динамика", by_day: "по дням", by_week: "по неделям", trend_label: "Динамика NPS с 95% интервалом",
    week_hours: "Часы недели", week_hours_note: "Оценки NPS по часам недели за период; серым: меньше 10, сравнивать рано.",
    breakdown: "В разрезе", all_time_note: "За всё время.", period_note: "За период, выбранный выше.", table_csv: "Эта таблица в CSV",
    reasons: "Почему покупатели так ответили", no_reasons: "причин пока не называли",
    panels: "Панели", forwarding: "Передача данных", dead_letters: "Недоставленные записи",
    col_panel: "панель", col_state: "состояние", col_firmware: "прошивка", col_update: "обновление",
    col_board: "плата", col_adverts: "реклама готова", col_last_answer: "последний ответ",
    col_outbox: "очередь", col_destination: "получатель", col_pending: "ждут", col_sent: "отправлено",
    col_dead: "отказано", col_last_error: "последняя ошибка", col_record: "запись", col_attempts: "попытки",
    col_error: "ошибка", col_answers: "ответы", col_ci: "95% интервал", col_response: "доля ответов",
    none: "(нет)", resend: "Отправить снова", never_connected: "ни разу не подключалась", headless: "без экрана",
    ready_of: "{ready} из {planned}", refused: "отклонена: {list}",
    state_online: "на связи", state_offline: "нет связи", state_switching: "обновляется",
    by_store: "магазин", by_till: "касса", by_cashier: "кассир", by_question: "вопрос",
    by_language: "язык", by_hour: "час", by_member: "карта", by_segment: "сегмент",
    by_advert: "реклама", by_emotion: "эмоция",
    group_promoter: "промоутеры (9–10)", group_passive: "нейтралы (7–8)", group_detractor: "критики (0–6)",
    group_kind: "{kind} «{value}»",
    weekdays: "Пн Вт Ср Чт Пт Сб Вс",
    health_broker_down: "Сервер сообщений панелей не работает: ни одну панель нельзя спросить.",
    todo_broker_down: "Перезапустите сервер магазина или позвоните в поддержку.",
    health_catalogue_refused: "Последняя правка каталога вопросов не принята: {error}",
    todo_catalogue_refused: "Панели задают прежние вопросы. Исправьте файл и сохраните его снова.",
    health_catalogue_texts_cut: "Тексты каталога вопросов ({n}) не помещаются на экран панели и показываются обрезанными, например: {first}",
    todo_catalogue_texts_cut: "Сократите их в каталоге (все они перечислены в журнале сервера).",
    health_destination_dead: "{dest} окончательно отказал в {dead} записях (см. «Недоставленные записи»).",
    todo_destination_dead: "Проверьте настройки {dest} и нажмите «Отправить снова» в разделе «Передача данных».",
    health_destination_stuck: "{dest} ничего не получает {minutes} мин: ждут {pending} записей. {error}",
    todo_destination_stuck: "Проверьте связь с {dest} и пароль; ничего не потеряно, записи ждут здесь.",
    health_panel_never_connected: "Панель кассы {till} ({panel}) ни разу не подключалась.",
    todo_panel_never_connected: "Включите её и проверьте Wi-Fi; установщик может настроить её заново.",
    health_panel_offline: "Панель кассы {till} ({panel}): {state}.",
    todo_panel_offline: "Проверьте питание и Wi-Fi. Покупателей на этой кассе сейчас не спрашивают.",
    health_receipts_not_asked: "{pct}% чеков ({offline} из {receipts}) пришли, когда панель была недоступна: этих покупателей не спросили.",
    todo_receipts_not_asked: "Какая панель недоступна, видно в таблице ниже.",
    health_host_unreachable: "Сервер магазина не отвечает с {since}: цифры ниже — на то время.",
    todo_host_unreachable: "Проверьте питание и сеть сервера; страница повторяет запрос сама.",
  },
};

function pickLang() {
  const saved = localStorage.getItem("lb-lang");
  if (saved && STRINGS[saved]) return saved;
  const wanted = (navigator.languages || [navigator.language || "en"]);
  for (const l of wanted) {
    const base = String(l).slice(0, 2).toLowerCase();
    if (STRINGS[base]) return base;
  }
  return "en";
}

let LANG = pickLang();

function t(key, params) {
  let text = (STRINGS[LANG] && STRINGS[LANG][key]);
  if (text === undefined) text = STRINGS.en[key];
  if (text === undefined) return key;
  return text.replace(/\{(\w+)\}/g, (m, name) =>
    params && params[name] !== undefined && params[name] !== null ? String(params[name]) : "");
}

// The static page's words: every element with data-i18n="key".
function translatePage() {
  document.documentElement.lang = LANG;
  document.title = t("title");
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const b of document.querySelectorAll("#langs button")) b.classList.toggle("on", b.dataset.lang === LANG);
}
