# Limits umconnect to the mailboxes of one mail-enabled security group with Exchange Online
# RBAC for Applications (https://learn.microsoft.com/exchange/permissions-exo/application-rbac).
# Run in Exchange Online PowerShell (Connect-ExchangeOnline) as an Organization Management member.
# Idempotent: what exists is kept, what is missing is created. Any failure stops the script
# with its error; an assignment is only ever created with the custom resource scope, and an
# existing assignment of one of the roles without that scope is an error (it would be tenant-wide).
#
# Permissions are additive: if the app also holds tenant-wide consent for Mail.ReadWrite,
# Calendars.Read or Contacts.ReadWrite in Entra ID, that grant still applies to every mailbox.
# Remove those Entra grants (keep User.Read.All) so that only the scoped assignments remain.
param(
  [Parameter(Mandatory = $true)] [string] $AppId,                    # application (client) id
  [Parameter(Mandatory = $true)] [string] $ServicePrincipalObjectId, # Enterprise application object id in this tenant
  [Parameter(Mandatory = $true)] [string] $GroupDistinguishedName    # DN of the mail-enabled security group
)
Set-StrictMode -Version Latest
$ErrorActionPreference = "Stop"

$scopeName = "umconnect mailboxes"
$filter = "MemberOfGroup -eq '$GroupDistinguishedName'"

$sp = Get-ServicePrincipal -Identity $ServicePrincipalObjectId -ErrorAction SilentlyContinue
if (-not $sp) {
  $sp = New-ServicePrincipal -AppId $AppId -ObjectId $ServicePrincipalObjectId -DisplayName "umconnect"
  Write-Host "service principal pointer created"
}

$scope = Get-ManagementScope -Identity $scopeName -ErrorAction SilentlyContinue
if (-not $scope) {
  $scope = New-ManagementScope -Name $scopeName -RecipientRestrictionFilter $filter
  Write-Host "management scope '$scopeName' created"
} elseif ($scope.RecipientFilter -ne $filter) {
  throw "management scope '$scopeName' exists with filter '$($scope.RecipientFilter)', not '$filter': fix or remove it, then run again"
}
if (-not $scope -or -not $scope.Name) { throw "no management scope '$scopeName': refusing to assign roles without it" }

foreach ($role in @("Application Mail.ReadWrite", "Application Calendars.Read", "Application Contacts.ReadWrite")) {
  $existing = @(Get-ManagementRoleAssignment -RoleAssignee $ServicePrincipalObjectId -Role $role -ErrorAction SilentlyContinue)
  $unscoped = @($existing | Where-Object { $_.CustomResourceScope -ne $scope.Name })
  if ($unscoped.Count -gt 0) {
    throw "'$role' is assigned to the app without the scope '$scopeName' ($($unscoped.Name -join ', ')): that grants every mailbox; remove it (Remove-ManagementRoleAssignment) and run again"
  }
  if ($existing.Count -eq 0) {
    New-ManagementRoleAssignment -App $ServicePrincipalObjectId -Role $role -CustomResourceScope $scope.Name | Out-Null
    Write-Host "'$role' assigned with scope '$scopeName'"
  } else {
    Write-Host "'$role' already assigned with scope '$scopeName'"
  }
}
# Check one mailbox in and one out of the group:
#   Test-ServicePrincipalAuthorization -Identity $ServicePrincipalObjectId -Resource user@contoso.com
