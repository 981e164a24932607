import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { RouterProvider } from "react-router";
import { AppProviders } from "./app/providers";
import { createAppRouter } from "./app/router";
import { applyInitialTheme } from "./components/ThemeToggle";
import { createQueryClient } from "./lib/query-client";
import "./styles.css";

applyInitialTheme();
const queryClient = createQueryClient();
const router = createAppRouter(queryClient);

createRoot(document.getElementById("root") as HTMLElement).render(
  <StrictMode>
    <AppProviders queryClient={queryClient}>
      <RouterProvider router={router} />
    </AppProviders>
  </StrictMode>,
);
