// umconnect: one subscription-scope deployment (azd up / az deployment sub create).
// Layout after Azure-Samples/functions-quickstart-typescript-azd: modules under app/, each
// resource family in its own module so that network pieces (VNet, NAT) slot in as one more.
// Every name is computed here at compile time, so role assignment names are deterministic and
// what-if predicts precisely (bicepconfig.json: what-if-short-circuiting is an error).
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; used to name and tag every resource.')
param environmentName string

// Regions with the Flex Consumption plan, as `az functionapp list-flexconsumption-locations`
// lists them and Azure-Samples/functions-quickstart-typescript-azd allows them
// (https://learn.microsoft.com/azure/azure-functions/flex-consumption-how-to#view-currently-supported-regions).
// Another region is refused before anything is created.
@minLength(1)
@description('Azure region for all resources; one with the Flex Consumption plan.')
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({ azd: { type: 'location' } })
param location string

@minLength(36)
@maxLength(36)
@description('Application (client) id of the multi-tenant app registration (set by the preprovision hook, scripts/azd/registration.mjs).')
param appClientId string

@description('Public https base URL of the function app, for Graph notification URLs. Empty: the default *.azurewebsites.net host.')
param publicBaseUrl string = ''

@description('Object id of the deploying user or service principal (azd: AZURE_PRINCIPAL_ID). Granted the Table, Queue and Key Vault data roles the operator CLI and the postprovision hook use. Empty: none.')
param deployerPrincipalId string = ''

@description('Key Vault name (the preprovision hook picks a unique one per azd environment). Empty: derived from the environment.')
@maxLength(24)
param keyVaultName string = ''

@description('recover: bring back this environment\'s soft-deleted vault (after `azd down` without --purge, or with purge protection); the preprovision hook sets it when it finds one.')
@allowed([ 'default', 'recover' ])
param keyVaultCreateMode string = 'default'

@description('Key Vault purge protection. Irreversible: with it, a deleted vault cannot be purged for 90 days (azd up then recovers it).')
param keyVaultPurgeProtection bool = false

@description('Highest number of instances the Flex Consumption plan may scale to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Always-ready instances for the HTTP functions (one group on Flex): Graph drops notifications that are not answered within 3 s, which a cold start can exceed.')
@minValue(0)
@maxValue(20)
param alwaysReadyHttpInstances int = 1

@description('Shards of the timers\' fan-out (UMC_SCHEDULE_SHARDS): no timer invocation lists more than 1/N of the links. About 1,500 links a shard: 64 at 100,000 links (README).')
@minValue(1)
@maxValue(1024)
param scheduleShards int = 16

@description('Network path to an on-premises voice store: VNet integration + NAT gateway with one static outbound IP (docs/deploy.md "Reaching the voice store").')
param enableNetworkPath bool = false

@description('Also private endpoints for Storage and Key Vault (needs enableNetworkPath).')
param enablePrivateEndpoints bool = false

@description('Address space of the VNet; must not overlap the store site network reached over VPN / ExpressRoute.')
param vnetAddressPrefix string = '10.90.0.0/24'

var abbrs = loadJsonContent('./abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var names = {
  resourceGroup: '${abbrs.resourcesResourceGroups}${environmentName}'
  identity: '${abbrs.managedIdentityUserAssignedIdentities}umconnect-${resourceToken}'
  storage: '${abbrs.storageStorageAccounts}umc${resourceToken}'
  logAnalytics: '${abbrs.operationalInsightsWorkspaces}umconnect-${resourceToken}'
  appInsights: '${abbrs.insightsComponents}umconnect-${resourceToken}'
  keyVault: empty(keyVaultName) ? '${abbrs.keyVaultVaults}umc${resourceToken}' : keyVaultName
  plan: '${abbrs.webServerFarms}umconnect-${resourceToken}'
  functionApp: '${abbrs.webSitesFunctions}umconnect-${resourceToken}'
}

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: names.resourceGroup
  location: location
  tags: tags
}

module identity './app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: { name: names.identity, location: location, tags: tags }
}

module storage './app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: { name: names.storage, location: location, tags: tags }
}

module monitoring './app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: { logAnalyticsName: names.logAnalytics, appInsightsName: names.appInsights, location: location, tags: tags }
}

module keyVault './app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: { name: names.keyVault, location: location, tags: tags, createMode: keyVaultCreateMode, purgeProtection: keyVaultPurgeProtection }
}

module rbac './app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: names.storage
    keyVaultName: names.keyVault
    appInsightsName: names.appInsights
    identityName: names.identity
    deployerPrincipalId: deployerPrincipalId
  }
  dependsOn: [ identity, storage, keyVault, monitoring ]
}

module network './app/network.bicep' = {
  name: 'network'
  scope: rg
  params: {
    enableNetworkPath: enableNetworkPath
    enablePrivateEndpoints: enablePrivateEndpoints
    location: location
    tags: tags
    namePrefix: 'umconnect-${resourceToken}'
    vnetAddressPrefix: vnetAddressPrefix
    appSubnetPrefix: cidrSubnet(vnetAddressPrefix, 26, 0)
    privateEndpointSubnetPrefix: cidrSubnet(vnetAddressPrefix, 27, 2)
    storageAccountName: names.storage
    keyVaultName: names.keyVault
  }
  dependsOn: [ storage, keyVault ]
}

module api './app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: names.functionApp
    planName: names.plan
    location: location
    tags: tags
    identityName: names.identity
    storageAccountName: names.storage
    deploymentContainerName: storage.outputs.deploymentContainerName
    appInsightsConnectionString: monitoring.outputs.connectionString
    keyVaultUri: keyVault.outputs.uri
    appClientId: appClientId
    publicBaseUrl: empty(publicBaseUrl) ? 'https://${names.functionApp}.azurewebsites.net' : publicBaseUrl
    maximumInstanceCount: maximumInstanceCount
    alwaysReadyHttpInstances: alwaysReadyHttpInstances
    scheduleShards: scheduleShards
    virtualNetworkSubnetId: network.outputs.appSubnetId
  }
  dependsOn: [ rbac ]
}

// Outputs land in the azd environment (.azure/<env>/.env): the hooks, docs/deploy.md and the
// operator CLI read them. Names and URIs only; no key, secret or connection string.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = api.outputs.uri
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
// The settings the operator CLI needs on a workstation (src/config.ts names).
// The one address the voice store sees (network path on): for its firewall and IMAP access list.
output UMC_OUTBOUND_IP string = network.outputs.outboundIp
output UMC_TABLE_SERVICE_URI string = storage.outputs.tableEndpoint
output UMC_QUEUE_SERVICE_URI string = storage.outputs.queueEndpoint
output UMC_KEY_VAULT_URI string = keyVault.outputs.uri
output UMC_PUBLIC_BASE_URL string = empty(publicBaseUrl) ? 'https://${names.functionApp}.azurewebsites.net' : publicBaseUrl
