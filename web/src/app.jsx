// The user app: balance, chat, tasks, history with in-browser proofs, their own audit, API keys, preferences.
import { Shell, mount, useRoute } from "./ui.jsx";
import { BalancePage } from "./pages/balance.jsx";
import { ChatPage } from "./pages/chat.jsx";
import { TasksPage } from "./pages/tasks.jsx";
import { HistoryPage } from "./pages/history.jsx";
import { AuditPage } from "./pages/audit.jsx";
import { ImagesPage } from "./pages/images.jsx";
import { KeysPage } from "./pages/keys.jsx";
import { PaymentsPage } from "./pages/payments.jsx";
import { SettingsPage } from "./pages/settings.jsx";

const LINKS = [["", "Balance"], ["chat", "Chat"], ["tasks", "Tasks"], ["history", "History"], ["audit", "Audit"],
  ["keys", "API keys"], ["settings", "Preferences"], ["images", "Images"], ["payments", "Buy credits"]];

function App() {
  const route = useRoute();
  const [page, arg] = route.split("/");
  return <Shell title="Creditflow" links={LINKS} route={page}
    other={<a href="/admin.html">Admin console</a>}>{(session) => {
      switch (page) {
        case "chat": return <ChatPage session={session} />;
        case "tasks": return <TasksPage session={session} taskId={arg ? decodeURIComponent(arg) : null} />;
        case "history": return <HistoryPage session={session} />;
        case "audit": return <AuditPage session={session} />;
        case "keys": return <KeysPage session={session} />;
        case "settings": return <SettingsPage session={session} />;
        case "images": return <ImagesPage session={session} />;
        case "payments": return <PaymentsPage session={session} />;
        default: return <BalancePage session={session} />;
      }
    }}</Shell>;
}

mount(App);
