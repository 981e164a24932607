import { useState, type FormEvent } from "react";
import { useLocation, useNavigate, useSearchParams } from "react-router";
import { Logo } from "@/components/Logo";
import { ThemeToggle } from "@/components/ThemeToggle";
import { errorMessage } from "@/lib/api-client";
import { useSignIn } from "../api/session";

export function SignInRoute() {
  const [params] = useSearchParams();
  const location = useLocation();
  const navigate = useNavigate();
  const signIn = useSignIn();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const notice = params.get("message");
  const next = (location.state as { from?: string } | null)?.from ?? params.get("next") ?? "/";

  const submit = (e: FormEvent) => {
    e.preventDefault();
    signIn.mutate({ email, password }, { onSuccess: () => navigate(next.startsWith("/") ? next : "/", { replace: true }) });
  };

  return (
    <main className="signin">
      <div className="signin__theme">
        <ThemeToggle />
      </div>
      <form className="signin__card" onSubmit={submit} aria-labelledby="signin-title">
        <Logo />
        <h1 id="signin-title">Sign in to FlowGate</h1>
        {notice && !signIn.isError && (
          <p className="notice notice--warn" role="status">
            {notice}
          </p>
        )}
        {signIn.isError && (
          <p className="notice notice--error" role="alert">
            {errorMessage(signIn.error)}
          </p>
        )}
        <label className="field">
          <span>Email</span>
          <input
            type="email"
            autoComplete="username"
            required
            autoFocus
            value={email}
            onChange={(e) => setEmail(e.target.value)}
          />
        </label>
        <label className="field">
          <span>Password</span>
          <input
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </label>
        <button className="btn btn--primary btn--block" type="submit" disabled={signIn.isPending}>
          {signIn.isPending ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
