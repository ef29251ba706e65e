// Model preferences: preferred model, cost-saving routing, a per-request credit cap.
import { useEffect, useState } from "preact/hooks";
import { api } from "../api.js";
import { Loading, Problem, useAction, useLoad } from "../ui.jsx";
import { ModelPicker } from "./chat.jsx";

export function SettingsPage() {
  const prefs = useLoad(() => api("GET", "/me/preferences"));
  const [model, setModel] = useState("");
  const [saving, setSaving] = useState(false);
  const [cap, setCap] = useState("");
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    if (!prefs.data) return;
    setModel(prefs.data.preferredModel || "");
    setSaving(prefs.data.costSaving);
    setCap(prefs.data.maxCreditsPerRequest ? prefs.data.maxCreditsPerRequest.credits : "");
  }, [prefs.data]);
  const [save, busy, error] = useAction(async () => {
    await api("PUT", "/me/preferences", { preferredModel: model || null, costSaving: saving,
      maxCreditsPerRequest: cap || null });
    setSaved(true);
  });
  if (prefs.loading) return <Loading what="your preferences" />;
  if (prefs.error) return <Problem error={prefs.error} />;
  return <form class="card" onSubmit={(e) => { e.preventDefault(); setSaved(false); save(); }}>
    <h2>Preferences</h2>
    <ModelPicker id="pref-model" value={model} onChange={(value) => { setModel(value); setSaved(false); }} />
    <label style="font-weight:400"><input type="checkbox" checked={saving}
      onChange={(e) => { setSaving(e.target.checked); setSaved(false); }} /> Cost-saving routing (prefer cheaper models)</label>
    <label for="pref-cap">Most one request may cost (credits; empty: no cap)</label>
    <input id="pref-cap" inputMode="decimal" pattern="[0-9]+(\.[0-9]{1,6})?" value={cap}
      onInput={(e) => { setCap(e.target.value); setSaved(false); }} />
    <div><button type="submit" disabled={busy}>Save</button></div>
    {saved && <p class="success" role="status">Saved.</p>}
    <Problem error={error} />
  </form>;
}
