# Limits umconnect to the mailboxes of one mail-enabled security group with Exchange Online
# RBAC for Applications (https://learn.microsoft.com/en-us/exchange/permissions-exo/application-rbac).
# Run in Exchange Online PowerShell (Connect-ExchangeOnline) as an Organization Management member.
#
# Permissions are additive: if the app also holds tenant-wide consent for Mail.ReadWrite,
# Calendars.Read or Contacts.ReadWrite in Entra ID, that grant still applies to every mailbox.
# Remove those Entra grants (keep User.Read.All) so that only the scoped assignments remain.
param(
  [Parameter(Mandatory = $true)] [string] $AppId,            # application (client) id
  [Parameter(Mandatory = $true)] [string] $ServicePrincipalObjectId, # Enterprise application object id in this tenant
  [Parameter(Mandatory = $true)] [string] $GroupDistinguishedName     # DN of the mail-enabled security group
)

New-ServicePrincipal -AppId $AppId -ObjectId $ServicePrincipalObjectId -DisplayName "umconnect" -ErrorAction SilentlyContinue
$scope = New-ManagementScope -Name "umconnect mailboxes" -RecipientRestrictionFilter "MemberOfGroup -eq '$GroupDistinguishedName'"
foreach ($role in @("Application Mail.ReadWrite", "Application Calendars.Read", "Application Contacts.ReadWrite")) {
  New-ManagementRoleAssignment -App $ServicePrincipalObjectId -Role $role -CustomResourceScope $scope.Name
}
# Check one mailbox in and one out of the group:
#   Test-ServicePrincipalAuthorization -Identity $ServicePrincipalObjectId -Resource user@contoso.com
