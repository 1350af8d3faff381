// Network path to an on-premises voice store (off by default; docs/deploy.md "Reaching the voice store").
//  - VNet integration of the Flex Consumption app: its outbound traffic leaves through a
//    delegated subnet (Microsoft.App/environments; Flex Consumption requires this delegation:
//    https://learn.microsoft.com/azure/azure-functions/flex-consumption-how-to#enable-virtual-network-integration).
//  - A NAT gateway on that subnet with a static public IP: every instance reaches the store from
//    this one address, which the store's admin puts on the firewall / IMAP access list / trusted
//    servers, and which the connection budget's "per client address" limit refers to
//    (src/app/connectionBudget.ts). https://learn.microsoft.com/azure/nat-gateway/nat-overview
//  - Optional private endpoints for Storage (table, queue, blob) and Key Vault, so state and
//    secrets are reached inside the VNet (the accounts can then refuse public access).
// Kept as a module of its own: infra/main.bicep calls it with `enableNetworkPath` (see
// docs/deploy.md for the call and the apply order).

@description('Turn the network path on (VNet integration + NAT gateway with a static IP).')
param enableNetworkPath bool = false

@description('Also create private endpoints for Storage and Key Vault (needs enableNetworkPath).')
param enablePrivateEndpoints bool = false

param location string
param tags object = {}
param namePrefix string

@description('Address space of the new VNet; must not overlap the store site network when it is reached over VPN / ExpressRoute.')
param vnetAddressPrefix string = '10.90.0.0/24'
@description('Subnet the Function app integrates with (/27 or larger; delegated to Microsoft.App/environments).')
param appSubnetPrefix string = '10.90.0.0/26'
@description('Subnet for private endpoints.')
param privateEndpointSubnetPrefix string = '10.90.0.64/27'

// Names, not resource ids: ids known only at run time would cut What-If short (linter rule
// what-if-short-circuiting); the existing resources give the ids.
@description('Storage account name (private endpoints for table, queue, blob); empty: none.')
param storageAccountName string = ''
@description('Key Vault name (private endpoint "vault"); empty: none.')
param keyVaultName string = ''

resource storageAccount 'Microsoft.Storage/storageAccounts@2023-05-01' existing = if (!empty(storageAccountName)) { name: storageAccountName }
resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = if (!empty(keyVaultName)) { name: keyVaultName }

resource natIp 'Microsoft.Network/publicIPAddresses@2023-11-01' = if (enableNetworkPath) {
  name: '${namePrefix}-nat-ip'
  location: location
  tags: tags
  sku: { name: 'Standard' }
  properties: {
    publicIPAllocationMethod: 'Static'
    publicIPAddressVersion: 'IPv4'
  }
}

resource nat 'Microsoft.Network/natGateways@2023-11-01' = if (enableNetworkPath) {
  name: '${namePrefix}-nat'
  location: location
  tags: tags
  sku: { name: 'Standard' }
  properties: {
    idleTimeoutInMinutes: 30 // IDLE watchers hold connections; RFC 2177 asks clients to re-IDLE within 29 minutes
    publicIpAddresses: [ { id: natIp.id } ]
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2023-11-01' = if (enableNetworkPath) {
  name: '${namePrefix}-vnet'
  location: location
  tags: tags
  properties: {
    addressSpace: { addressPrefixes: [ vnetAddressPrefix ] }
    subnets: [
      {
        name: 'app'
        properties: {
          addressPrefix: appSubnetPrefix
          natGateway: { id: nat.id }
          delegations: [ { name: 'flex', properties: { serviceName: 'Microsoft.App/environments' } } ]
        }
      }
      {
        name: 'private-endpoints'
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
    ]
  }
}

var storageGroups = [ 'table', 'queue', 'blob' ]
var privateEndpoints = enableNetworkPath && enablePrivateEndpoints

resource storageEndpoints 'Microsoft.Network/privateEndpoints@2023-11-01' = [for g in storageGroups: if (privateEndpoints && !empty(storageAccountName)) {
  name: '${namePrefix}-pe-st-${g}'
  location: location
  tags: tags
  properties: {
    subnet: { id: '${vnet.id}/subnets/private-endpoints' }
    privateLinkServiceConnections: [ { name: g, properties: { privateLinkServiceId: storageAccount.id, groupIds: [ g ] } } ]
  }
}]

resource storageZones 'Microsoft.Network/privateDnsZones@2020-06-01' = [for g in storageGroups: if (privateEndpoints && !empty(storageAccountName)) {
  name: 'privatelink.${g}.${environment().suffixes.storage}'
  location: 'global'
  tags: tags
}]

resource storageZoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [for (g, i) in storageGroups: if (privateEndpoints && !empty(storageAccountName)) {
  parent: storageZones[i]
  name: 'vnet'
  location: 'global'
  properties: { virtualNetwork: { id: vnet.id }, registrationEnabled: false }
}]

resource storageZoneGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2023-11-01' = [for (g, i) in storageGroups: if (privateEndpoints && !empty(storageAccountName)) {
  parent: storageEndpoints[i]
  name: 'default'
  properties: { privateDnsZoneConfigs: [ { name: g, properties: { privateDnsZoneId: storageZones[i].id } } ] }
}]

resource vaultEndpoint 'Microsoft.Network/privateEndpoints@2023-11-01' = if (privateEndpoints && !empty(keyVaultName)) {
  name: '${namePrefix}-pe-kv'
  location: location
  tags: tags
  properties: {
    subnet: { id: '${vnet.id}/subnets/private-endpoints' }
    privateLinkServiceConnections: [ { name: 'vault', properties: { privateLinkServiceId: keyVault.id, groupIds: [ 'vault' ] } } ]
  }
}

resource vaultZone 'Microsoft.Network/privateDnsZones@2020-06-01' = if (privateEndpoints && !empty(keyVaultName)) {
  name: 'privatelink.vaultcore.azure.net'
  location: 'global'
  tags: tags
}

resource vaultZoneLink 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = if (privateEndpoints && !empty(keyVaultName)) {
  parent: vaultZone
  name: 'vnet'
  location: 'global'
  properties: { virtualNetwork: { id: vnet.id }, registrationEnabled: false }
}

resource vaultZoneGroup 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2023-11-01' = if (privateEndpoints && !empty(keyVaultName)) {
  parent: vaultEndpoint
  name: 'default'
  properties: { privateDnsZoneConfigs: [ { name: 'vault', properties: { privateDnsZoneId: vaultZone.id } } ] }
}

@description('Subnet id for the Function app\'s virtualNetworkSubnetId (empty when off).')
output appSubnetId string = enableNetworkPath ? '${vnet.id}/subnets/app' : ''

@description('The one outbound address of every instance: give it to the voice store\'s admin for the firewall / access list.')
output outboundIp string = enableNetworkPath ? natIp!.properties.ipAddress : ''
