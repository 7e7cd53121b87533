// Russian and English strings. The language comes from the browser (navigator.language) until
// the person picks one, which is then remembered in localStorage.
//
// Elements carry data-i18n="key" (their text) or data-i18n-label="key" (their aria-label);
// apply() fills them. Everything is set with textContent / setAttribute, never as HTML.

const STRINGS = {
  en: {
    skip: "Skip to the upload",
    title: "Speech to text",
    language: "Language",
    apiKey: "API key",
    dropHint: "Drop audio or video files here",
    dropHere: "Drop the files to transcribe them",
    pick: "Choose files",
    dropFormats: "Any format ffmpeg reads: WAV, MP3, M4A, OGG, FLAC, video…",
    speechLanguage: "Spoken language",
    speech_auto: "Detect",
    speech_ru: "Russian",
    speech_en: "English",
    speech_kk: "Kazakh",
    speech_ky: "Kyrgyz",
    speech_uz: "Uzbek",
    jobs: "Recordings",
    noJobs: "No recordings yet.",
    more: "Show more",
    close: "Close",
    progress: "Progress",
    player: "Audio player",
    actions: "Actions",
    copy: "Copy text",
    download: "Download {f}",
    copied: "The text is copied.",
    copyFailed: "Could not copy: select the text and copy it by hand.",
    cancel: "Cancel",
    delete: "Delete",
    search: "Search in the text",
    onlyMatches: "Only matching parts",
    matches: "{n} found",
    noMatches: "Nothing found",
    transcript: "Transcript",
    labelSpeakers: "Label speakers",
    speakerCount: "How many (optional)",
    keywords: "Names and terms to recognise (optional)",
    keywordsHint: "Separate them with commas. The recogniser favours them; add :6 to favour one more strongly, but too strong a boost writes a word where it was not said.",
    speakers: "Speakers",
    speakersHint: "Press a name here to hide or show that speaker; press a name in the text to rename the speaker.",
    speakerHide: "Hide {name}",
    speakerShow: "Show {name}",
    renameSpeaker: "{name}: rename this speaker",
    renameTitle: "Rename speaker {label}",
    renameHint: "The new name is used on this page and in every download. Leave it empty to go back to “{label}”.",
    speakerName: "Name",
    err_speaker_name: "This name cannot be used: at most 64 characters, letters, digits, spaces and punctuation only.",
    err_num_speakers: "The number of speakers must be a whole number from 1 to 32.",
    err_keywords: "A name or term cannot be used (at most 100, of up to 64 letters each, in the letters the model writes): {msg}",
    keyTitle: "This server needs an API key",
    keyHelp: "Ask the person who runs the server for the key. It is kept in this browser only.",
    keyLabel: "API key",
    keyWrong: "This key is wrong: the server did not accept it. Check it and try again.",
    keySavedWrong: "The saved key is no longer accepted by the server. Enter the current key.",
    save: "Save",
    forget: "Forget the key",
    cancelDialog: "Close",
    keep: "Keep it",
    confirmDelete: "Delete “{name}” with its audio and text? This cannot be undone.",
    confirmCancel: "Stop transcribing “{name}” and delete it?",
    status_queued: "Waiting in line",
    status_running: "Transcribing",
    status_completed: "Done",
    status_failed: "Failed",
    status_cancelled: "Cancelled",
    status_uploading: "Uploading {p}%",
    status_upload_failed: "Not uploaded",
    progressOf: "{done} of {total}",
    unknownDuration: "length unknown",
    retry: "Try again",
    dismiss: "Dismiss",
    open: "Open",
    waitingText: "The text will appear here as the recording is transcribed.",
    emptyText: "No speech was recognised in this recording.",
    noJobApi: "This server has no job API (GET /v1/jobs), so the page cannot list or start transcriptions.",
    offline: "The server cannot be reached. It may be restarting; the page keeps trying.",
    backOnline: "The server is back.",
    loadFailed: "Could not load the list: {msg}",
    audioUnsupported: "This browser cannot play this file's format. The transcript and downloads still work.",
    audioMissing: "The audio of this recording is not available.",
    err_network: "The server cannot be reached — it may be restarting. Try again in a moment.",
    err_not_audio: "This is not an audio or video file the server can read.",
    err_empty: "The file is empty or contains no sound.",
    err_too_long: "The recording is longer than this server accepts.",
    err_too_big: "The file is too big for this server's upload limit.",
    err_busy: "The server is busy. Try again in {s} s.",
    err_busy_now: "The server is busy. Try again in a few seconds.",
    err_starting: "The server is still starting. Try again in a few seconds.",
    err_restarting: "The server is restarting. Try again in a moment.",
    err_storage: "The server has run out of disk space for new recordings.",
    err_jobs_unavailable: "The server cannot take recordings right now (its job store is not available).",
    err_not_found: "This recording no longer exists on the server.",
    err_auth: "The server did not accept the API key.",
    err_cancelled: "The transcription was cancelled.",
    err_other: "Something went wrong: {msg}",
    record: "Record",
    stop: "Stop",
    liveTitle: "Live text",
    liveStarting: "Starting the microphone…",
    liveListening: "Listening… speak now.",
    liveSaving: "Saving the recording…",
    liveLost: "The connection to the server was lost; the recording stopped.",
    liveRefused: "The server refused live transcription (it may be busy or switched off). Try again later.",
    liveKeyWrong: "The server did not accept the API key: live transcription needs the right key.",
    liveNotSaved: "The recording could not be saved.",
    micInsecure: "The microphone works only on a secure page: open this server over https, or on this computer as localhost.",
    micUnsupported: "This browser cannot record from a microphone.",
    mic_denied: "The microphone is blocked: allow it for this page in the browser's site settings, then press Record again.",
    mic_missing: "No microphone was found. Connect one and press Record again.",
    mic_busy: "The microphone is in use by another program or could not be started.",
    mic_other: "The microphone could not be started.",
  },
  ru: {
    skip: "Перейти к загрузке",
    title: "Речь в текст",
    language: "Язык",
    apiKey: "Ключ API",
    dropHint: "Перетащите сюда аудио- или видеофайлы",
    dropHere: "Отпустите файлы, чтобы распознать их",
    pick: "Выбрать файлы",
    dropFormats: "Любой формат, который читает ffmpeg: WAV, MP3, M4A, OGG, FLAC, видео…",
    speechLanguage: "Язык речи",
    speech_auto: "Определить",
    speech_ru: "Русский",
    speech_en: "Английский",
    speech_kk: "Казахский",
    speech_ky: "Киргизский",
    speech_uz: "Узбекский",
    jobs: "Записи",
    noJobs: "Записей пока нет.",
    more: "Показать ещё",
    close: "Закрыть",
    progress: "Ход распознавания",
    player: "Проигрыватель",
    actions: "Действия",
    copy: "Копировать текст",
    download: "Скачать {f}",
    copied: "Текст скопирован.",
    copyFailed: "Не удалось скопировать: выделите текст и скопируйте вручную.",
    cancel: "Отменить",
    delete: "Удалить",
    search: "Поиск по тексту",
    onlyMatches: "Только совпадения",
    matches: "Найдено: {n}",
    noMatches: "Ничего не найдено",
    transcript: "Текст записи",
    labelSpeakers: "Разметить говорящих",
    speakerCount: "Сколько их (необязательно)",
    keywords: "Имена и термины, которые нужно узнать (необязательно)",
    keywordsHint: "Через запятую. Распознаватель отдаёт им предпочтение; допишите :6, чтобы усилить одно из них, но слишком сильное усиление вписывает слово туда, где его не говорили.",
    speakers: "Говорящие",
    speakersHint: "Нажмите на имя здесь, чтобы скрыть или показать этого говорящего; нажмите на имя в тексте, чтобы переименовать.",
    speakerHide: "Скрыть: {name}",
    speakerShow: "Показать: {name}",
    renameSpeaker: "{name}: переименовать говорящего",
    renameTitle: "Переименовать говорящего {label}",
    renameHint: "Новое имя будет на странице и во всех скачанных файлах. Оставьте поле пустым, чтобы вернуть «{label}».",
    speakerName: "Имя",
    err_speaker_name: "Такое имя не подходит: не длиннее 64 знаков, только буквы, цифры, пробелы и знаки препинания.",
    err_num_speakers: "Число говорящих — целое число от 1 до 32.",
    err_keywords: "Имя или термин не подходит (не больше 100, каждое до 64 букв, теми буквами, которыми пишет модель): {msg}",
    keyTitle: "Этому серверу нужен ключ API",
    keyHelp: "Спросите ключ у того, кто настроил сервер. Он хранится только в этом браузере.",
    keyLabel: "Ключ API",
    keyWrong: "Ключ неверный: сервер его не принял. Проверьте ключ и попробуйте снова.",
    keySavedWrong: "Сохранённый ключ больше не подходит. Введите действующий ключ.",
    save: "Сохранить",
    forget: "Забыть ключ",
    cancelDialog: "Закрыть",
    keep: "Оставить",
    confirmDelete: "Удалить «{name}» вместе со звуком и текстом? Это нельзя отменить.",
    confirmCancel: "Остановить распознавание «{name}» и удалить запись?",
    status_queued: "В очереди",
    status_running: "Распознаётся",
    status_completed: "Готово",
    status_failed: "Ошибка",
    status_cancelled: "Отменено",
    status_uploading: "Загрузка {p}%",
    status_upload_failed: "Не загружено",
    progressOf: "{done} из {total}",
    unknownDuration: "длительность неизвестна",
    retry: "Повторить",
    dismiss: "Убрать",
    open: "Открыть",
    waitingText: "Текст появится здесь по мере распознавания.",
    emptyText: "В этой записи речь не распознана.",
    noJobApi: "На этом сервере нет API заданий (GET /v1/jobs), поэтому страница не может показывать и запускать распознавание.",
    offline: "Сервер недоступен. Возможно, он перезапускается; страница продолжает попытки.",
    backOnline: "Сервер снова доступен.",
    loadFailed: "Не удалось загрузить список: {msg}",
    audioUnsupported: "Браузер не умеет воспроизводить этот формат. Текст и скачивание работают.",
    audioMissing: "Звук этой записи недоступен.",
    err_network: "Сервер недоступен — возможно, он перезапускается. Попробуйте чуть позже.",
    err_not_audio: "Это не аудио- или видеофайл, который может прочитать сервер.",
    err_empty: "Файл пустой или в нём нет звука.",
    err_too_long: "Запись длиннее, чем принимает этот сервер.",
    err_too_big: "Файл больше, чем разрешено загружать на этот сервер.",
    err_busy: "Сервер занят. Попробуйте через {s} с.",
    err_busy_now: "Сервер занят. Попробуйте через несколько секунд.",
    err_starting: "Сервер ещё запускается. Попробуйте через несколько секунд.",
    err_restarting: "Сервер перезапускается. Попробуйте чуть позже.",
    err_storage: "На сервере закончилось место для новых записей.",
    err_jobs_unavailable: "Сервер сейчас не принимает записи (хранилище заданий недоступно).",
    err_not_found: "Этой записи больше нет на сервере.",
    err_auth: "Сервер не принял ключ API.",
    err_cancelled: "Распознавание отменено.",
    err_other: "Что-то пошло не так: {msg}",
    record: "Записать",
    stop: "Стоп",
    liveTitle: "Текст в реальном времени",
    liveStarting: "Включаю микрофон…",
    liveListening: "Слушаю… говорите.",
    liveSaving: "Сохраняю запись…",
    liveLost: "Связь с сервером прервалась; запись остановлена.",
    liveRefused: "Сервер не принял распознавание в реальном времени (он занят или оно выключено). Попробуйте позже.",
    liveKeyWrong: "Сервер не принял ключ API: для записи нужен верный ключ.",
    liveNotSaved: "Запись не удалось сохранить.",
    micInsecure: "Микрофон работает только на защищённой странице: откройте сервер по https или на этом компьютере как localhost.",
    micUnsupported: "Этот браузер не умеет записывать с микрофона.",
    mic_denied: "Доступ к микрофону запрещён: разрешите его для этой страницы в настройках сайта и снова нажмите «Записать».",
    mic_missing: "Микрофон не найден. Подключите его и снова нажмите «Записать».",
    mic_busy: "Микрофон занят другой программой или не включается.",
    mic_other: "Микрофон не удалось включить.",
  },
};

export const LANGUAGES = Object.keys(STRINGS);
const STORAGE = "gigaam-lang";
let current = pickLanguage();

function pickLanguage() {
  let saved = null;
  try {
    saved = localStorage.getItem(STORAGE);
  } catch {
    saved = null;
  }
  if (saved && STRINGS[saved]) return saved;
  const wanted = navigator.languages?.length ? navigator.languages : [navigator.language || "en"];
  for (const tag of wanted) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (STRINGS[base]) return base;
  }
  return "en";
}

export function language() {
  return current;
}

export function setLanguage(lang) {
  if (!STRINGS[lang]) return;
  current = lang;
  try {
    localStorage.setItem(STORAGE, lang);
  } catch {
    // storage may be disabled (private mode): the choice lasts for this page only
  }
}

/** The string for key in the current language, with {name} placeholders filled. */
export function t(key, params = {}) {
  const text = STRINGS[current][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : ""));
}

/** Fill every data-i18n / data-i18n-label element under root. */
export function apply(root = document) {
  document.documentElement.lang = current;
  document.title = `GigaAM — ${t("title")}`;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  }
}
