import { useParams } from "react-router";
import { PageHeader } from "@/components/PageHeader";
import { EmptyState } from "@/components/States";
import { ApiKeysPanel } from "../components/ApiKeysPanel";
import { UsersPanel } from "../components/UsersPanel";

export function AdminRoute({ canAdmin, currentUserId }: { canAdmin: boolean; currentUserId: string | null }) {
  const { orgId = "" } = useParams();
  return (
    <div className="page">
      <PageHeader title="Admin" subtitle="People, roles and API keys of this organisation" />
      {canAdmin ? (
        <div className="stack">
          <UsersPanel orgId={orgId} currentUserId={currentUserId} />
          <ApiKeysPanel orgId={orgId} />
        </div>
      ) : (
        <EmptyState title="Admins only">Only admins of this organisation manage people and API keys.</EmptyState>
      )}
    </div>
  );
}
