#!/usr/bin/env bash
# Creates umconnect's multi-tenant app registration with exactly the Microsoft Graph
# APPLICATION permissions the code uses, a certificate credential, the admin-consent redirect
# URI, and (optionally) the federated credential that lets the function app's managed identity
# sign in as the app without any secret. Needs: az login as an admin of the publisher tenant.
#
#   scripts/create-app-registration.sh <function-app-base-url> [managed-identity-principal-id]
set -euo pipefail
BASE_URL="${1:?function app base URL, e.g. https://func-umconnect-xyz.azurewebsites.net}"
MI_PRINCIPAL_ID="${2:-}"
GRAPH_APP_ID="00000003-0000-0000-c000-000000000000" # Microsoft Graph

# Microsoft Graph application permissions (app role ids are fixed across tenants):
# https://learn.microsoft.com/en-us/graph/permissions-reference
GRAPH_APP_ROLES=(
  "e2a3a72e-5f79-4c64-b1b1-878b674786c9=Mail.ReadWrite"      # create voicemail items, flags, moves, delta, subscriptions
  "798ee544-9d2d-430c-a058-570e29e34338=Calendars.Read"      # calendar mirror (calendarView delta)
  "6918b873-d17a-4dc1-b314-35f528134491=Contacts.ReadWrite"  # two-way contacts
  "df021288-bdef-4463-88db-98f22de89214=User.Read.All"       # match voice mailboxes to users by SMTP proxy address
)

APP_ID=$(az ad app create --display-name "umconnect" --sign-in-audience AzureADMultipleOrgs \
  --web-redirect-uris "${BASE_URL}/api/admin/consent/callback" --query appId -o tsv)
echo "app registration: ${APP_ID}"

for entry in "${GRAPH_APP_ROLES[@]}"; do
  az ad app permission add --id "$APP_ID" --api "$GRAPH_APP_ID" --api-permissions "${entry%%=*}=Role" >/dev/null
  echo "  + ${entry#*=} (application)"
done

# The admin API (status page and JSON): operators of this tenant sign in with Entra and need the
# app role Umconnect.Admin (assign it under Enterprise applications > umconnect > Users and
# groups). Tokens are v2.0; the Azure CLI is pre-authorized, so an operator gets one with
#   az account get-access-token --scope api://<app id>/.default
# (src/admin/adminAuth.ts checks signature, issuer, audience, lifetime and the role.)
ADMIN_ROLE_ID=$(cat /proc/sys/kernel/random/uuid)
SCOPE_ID=$(cat /proc/sys/kernel/random/uuid)
AZURE_CLI_APP_ID="04b07795-8ddb-461a-bbee-02f9e1bf7b46"
az ad app update --id "$APP_ID" --identifier-uris "api://${APP_ID}" \
  --app-roles "[{\"allowedMemberTypes\":[\"User\"],\"description\":\"Read umconnect status and operate links\",\"displayName\":\"umconnect administrator\",\"isEnabled\":true,\"value\":\"Umconnect.Admin\",\"id\":\"${ADMIN_ROLE_ID}\"}]"
OBJECT_ID=$(az ad app show --id "$APP_ID" --query id -o tsv)
az rest --method PATCH --uri "https://graph.microsoft.com/v1.0/applications/${OBJECT_ID}" --headers "Content-Type=application/json" \
  --body "{\"api\":{\"requestedAccessTokenVersion\":2,\"oauth2PermissionScopes\":[{\"id\":\"${SCOPE_ID}\",\"value\":\"admin\",\"type\":\"Admin\",\"isEnabled\":true,\"adminConsentDisplayName\":\"Administer umconnect\",\"adminConsentDescription\":\"Read umconnect status as the signed-in operator\"}]}}" >/dev/null
az rest --method PATCH --uri "https://graph.microsoft.com/v1.0/applications/${OBJECT_ID}" --headers "Content-Type=application/json" \
  --body "{\"api\":{\"preAuthorizedApplications\":[{\"appId\":\"${AZURE_CLI_APP_ID}\",\"delegatedPermissionIds\":[\"${SCOPE_ID}\"]}]}}" >/dev/null
echo "admin API: app role Umconnect.Admin, identifier api://${APP_ID}, Azure CLI pre-authorized"

# Certificate credential: only the public part is uploaded; keep the key in Key Vault.
if [ ! -f umconnect-app.pem ]; then
  openssl req -x509 -newkey rsa:3072 -nodes -days 730 -subj "/CN=umconnect" -keyout umconnect-app.key -out umconnect-app.crt
  cat umconnect-app.key umconnect-app.crt > umconnect-app.pem && rm umconnect-app.key && chmod 600 umconnect-app.pem
fi
az ad app credential reset --id "$APP_ID" --cert @umconnect-app.crt --append >/dev/null
echo "certificate credential added; import umconnect-app.pem into Key Vault, then delete the local copy"

if [ -n "$MI_PRINCIPAL_ID" ]; then
  # The managed identity as a federated credential: no secret at all in Azure.
  # https://learn.microsoft.com/en-us/entra/workload-id/workload-identity-federation-config-app-trust-managed-identity
  TENANT_ID=$(az account show --query tenantId -o tsv)
  az ad app federated-credential create --id "$APP_ID" --parameters "{\"name\":\"umconnect-mi\",\"issuer\":\"https://login.microsoftonline.com/${TENANT_ID}/v2.0\",\"subject\":\"${MI_PRINCIPAL_ID}\",\"audiences\":[\"api://AzureADTokenExchange\"]}" >/dev/null
  echo "federated credential for managed identity ${MI_PRINCIPAL_ID} added"
fi
echo "set UMC_APP_CLIENT_ID=${APP_ID} (azd env set UMC_APP_CLIENT_ID ${APP_ID})"
